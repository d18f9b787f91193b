// coalesce-poison-model: writes a model repository holding one small TorchScript model that
// fails on poison inputs, for coalesce-stress --poison (bench/poison-stress.sh runs them
// together).
//
//   coalesce-poison-model --repository=/tmp/poison-repo
//
// Model `poison` (--name): FP32 input INPUT0 and output OUTPUT0 of --width values a row,
// batched up to --max_batch_size, OUTPUT0 = 2 * INPUT0 + 1. A value below -100 makes it raise
// (as a model asserting on its input does); a value above 1e6 makes it allocate 2^50 bytes, more
// than any machine's address space, so the allocation fails at once instead of swapping.
#include <torch/script.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/flag_parsing.h"

ABSL_FLAG(std::string, repository, "", "Folder to write the repository into (created).");
ABSL_FLAG(std::string, name, "poison", "The model's name.");
ABSL_FLAG(int, width, 16, "Values per row of the input and the output.");
ABSL_FLAG(int, max_batch_size, 16, "The model's max_batch_size.");

namespace {

constexpr char kForward[] = R"py(
def forward(self, x):
    assert not bool((x < -100.0).any()), 'poison input: a value below -100'
    if bool((x > 1000000.0).any()):
        hog = torch.empty([1 << 48])
        return hog[:x.numel()].view(x.size())
    return x * 2.0 + 1.0
)py";

int Main() {
  const std::filesystem::path root = absl::GetFlag(FLAGS_repository);
  if (root.empty()) {
    coalesce::ExitWithUsageError("coalesce-poison-model", "--repository is required");
  }
  const std::string name = absl::GetFlag(FLAGS_name);
  const std::filesystem::path folder = root / name;
  std::filesystem::create_directories(folder / "1");
  std::ofstream(folder / "config.pbtxt")
      << absl::StrCat("name: \"", name, "\"\nplatform: \"pytorch_libtorch\"\nmax_batch_size: ",
                      absl::GetFlag(FLAGS_max_batch_size),
                      "\ninput [ { name: \"INPUT0\" data_type: TYPE_FP32 dims: [ ",
                      absl::GetFlag(FLAGS_width),
                      " ] } ]\noutput [ { name: \"OUTPUT0\" data_type: TYPE_FP32 dims: [ ",
                      absl::GetFlag(FLAGS_width), " ] } ]\n");
  try {
    torch::jit::Module module("poison_model");
    module.define(kForward);
    module.save((folder / "1" / "model.pt").string());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "coalesce-poison-model: cannot write %s: %s\n", folder.c_str(), e.what());
    return 1;
  }
  std::printf("wrote model '%s' to %s\n", name.c_str(), folder.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  coalesce::ParseFlagsOrExit(
      argc, argv, "coalesce-poison-model",
      "Writes a repository with a TorchScript model that fails on poison inputs, for "
      "coalesce-stress --poison.\nExample: coalesce-poison-model --repository=/tmp/poison-repo");
  return Main();
}
