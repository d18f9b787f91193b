// Padded batching through the whole path: a repository model whose config declares padding,
// served by a real server over loopback on CPU with a real TorchScript encoder (embedding, one
// masked attention layer, masked mean). Requests of different lengths answered in one padded
// batch equal the same requests answered alone, and a model that declares nothing still never
// puts two lengths in one batch.
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/http_get.h"
#include "tests/repository_server.h"

namespace coalesce {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;

// Tokens embedded as four waves of their id, one attention layer whose keys are masked, the
// hidden states and their masked mean. Padded positions must change nothing a request keeps:
// their keys are masked out of every softmax (exp(-1e9) is exactly 0 in FP32), their hidden
// rows are cut, and the mean counts only masked-in positions.
constexpr char kEncoderForward[] = R"(
def forward(self, ids, mask):
    f = ids.float().unsqueeze(-1)
    x = torch.cat([torch.sin(f * 0.1), torch.cos(f * 0.37), torch.sin(f * 0.05 + 1.0),
                   torch.cos(f * 0.011)], -1)
    scores = torch.matmul(x, x.transpose(1, 2)) * 0.5
    scores = scores.masked_fill((mask.unsqueeze(1) > 0).logical_not(), -1e9)
    h = torch.matmul(torch.softmax(scores, -1), x)
    m = mask.float().unsqueeze(-1)
    return h, (h * m).sum(1) / m.sum(1)
)";

// The encoder's tensors; `extra` adds scheduling and parameters.
std::string EncoderConfig(const std::string& name, const std::string& extra) {
  return absl::StrCat("name: \"", name, R"pb("
    platform: "pytorch_libtorch"
    max_batch_size: 8
    input [
      { name: "IDS" data_type: TYPE_INT64 dims: [ -1 ] },
      { name: "MASK" data_type: TYPE_INT64 dims: [ -1 ] }
    ]
    output [
      { name: "HIDDEN" data_type: TYPE_FP32 dims: [ -1, 4 ] },
      { name: "POOLED" data_type: TYPE_FP32 dims: [ 4 ] }
    ]
  )pb", extra);
}

// Waits for 4 requests, for 20 s at most: long enough that the test's four concurrent requests
// always arrive within it.
constexpr char kPaddedExtra[] = R"pb(
  dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 20000000 }
  parameters { key: "coalesce.pad_buckets" value: { string_value: "4,8,16" } }
  parameters { key: "coalesce.pad.IDS" value: { string_value: "0" } }
  parameters { key: "coalesce.pad.MASK" value: { string_value: "0" } }
  parameters { key: "coalesce.cut.HIDDEN" value: { string_value: "IDS" } }
)pb";
// Would batch four requests of one shape, but waits only 300 ms for them.
constexpr char kPlainExtra[] = R"pb(
  dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 300000 }
)pb";

// The relative tolerance of a padded answer against the same request alone, on CPU FP32; the
// absolute floor covers values near zero. Padding changes only how the model's sums are
// blocked, not what they add.
constexpr float kRelative = 1e-5f, kAbsolute = 1e-7f;

struct Encoded {
  std::vector<int64_t> hidden_shape;
  std::vector<float> hidden, pooled;
};

class PaddingIntegrationTest : public RepositoryServerTest {
 protected:
  void SetUp() override {
    RepositoryServerTest::SetUp();
    for (const auto& [name, extra] : {std::pair{"padded", kPaddedExtra},
                                      std::pair{"plain", kPlainExtra}}) {
      const absl::Status written =
          WriteRepositoryModel(root_, name, EncoderConfig(name, extra), 1, kEncoderForward);
      ASSERT_TRUE(written.ok()) << written;
    }
    Start(ControlMode::kNone, {"*"});
  }

  // One request of `ids` (every position masked in) to `model`.
  Encoded Encode(const std::string& model, const std::vector<int64_t>& ids) {
    ModelInferRequest request;
    request.set_model_name(model);
    const std::vector<int64_t> mask(ids.size(), 1);
    for (const auto& [name, values] : {std::pair{"IDS", &ids}, std::pair{"MASK", &mask}}) {
      auto* input = request.add_inputs();
      input->set_name(name);
      input->set_datatype("INT64");
      input->add_shape(1);
      input->add_shape(static_cast<int64_t>(values->size()));
      request.add_raw_input_contents(std::string(reinterpret_cast<const char*>(values->data()),
                                                 values->size() * sizeof(int64_t)));
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    ModelInferResponse response;
    grpc::Status status = stub_->ModelInfer(&context, request, &response);
    EXPECT_TRUE(status.ok()) << model << ": " << status.error_message();
    Encoded encoded;
    if (!status.ok()) return encoded;
    auto floats = [](const std::string& bytes) {
      std::vector<float> values(bytes.size() / sizeof(float));
      std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
      return values;
    };
    for (int o = 0; o < response.outputs_size(); ++o) {
      if (response.outputs(o).name() == "HIDDEN") {
        encoded.hidden = floats(response.raw_output_contents(o));
        encoded.hidden_shape.assign(response.outputs(o).shape().begin(),
                                    response.outputs(o).shape().end());
      } else {
        encoded.pooled = floats(response.raw_output_contents(o));
      }
    }
    return encoded;
  }

  // Sends one request per entry of `requests` to `model` at once; the answers in that order.
  std::vector<Encoded> EncodeAtOnce(const std::string& model,
                                    const std::vector<std::vector<int64_t>>& requests) {
    std::vector<Encoded> answers(requests.size());
    std::vector<std::thread> clients;
    for (size_t k = 0; k < requests.size(); ++k) {
      clients.emplace_back([&, k] { answers[k] = Encode(model, requests[k]); });
    }
    for (std::thread& client : clients) client.join();
    return answers;
  }

  // The model's executions by batch size (ModelStatistics' batch_stats).
  std::map<uint64_t, uint64_t> BatchSizes(const std::string& model) {
    grpc::ClientContext context;
    inference::ModelStatisticsRequest request;
    request.set_name(model);
    inference::ModelStatisticsResponse response;
    EXPECT_TRUE(stub_->ModelStatistics(&context, request, &response).ok());
    std::map<uint64_t, uint64_t> sizes;
    for (const auto& batch : response.model_stats(0).batch_stats()) {
      sizes[batch.batch_size()] = batch.compute_infer().count();
    }
    return sizes;
  }

  static void ExpectNear(const std::vector<float>& got, const std::vector<float>& alone,
                         const std::string& what) {
    ASSERT_EQ(got.size(), alone.size()) << what;
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_LE(std::fabs(got[k] - alone[k]), kRelative * std::fabs(alone[k]) + kAbsolute)
          << what << " element " << k << ": " << got[k] << " padded vs " << alone[k] << " alone";
    }
  }
};

// Four lengths of bucket 8: the batch pads 5, 6 and 7 to 8.
const std::vector<std::vector<int64_t>> kRequests = {
    {101, 7, 2045, 3, 999},
    {5, 17, 60, 333, 2, 81},
    {4000, 1, 12, 77, 9, 250, 31},
    {8, 64, 512, 4096, 3, 27, 88, 1000},
};

TEST_F(PaddingIntegrationTest, RequestsAnsweredInOnePaddedBatchEqualTheSameRequestsAlone) {
  const std::vector<Encoded> alone = EncodeAtOnce("plain", kRequests);
  const std::vector<Encoded> padded = EncodeAtOnce("padded", kRequests);
  // One batch of the four.
  EXPECT_EQ(BatchSizes("padded"), (std::map<uint64_t, uint64_t>{{4, 1}}));
  for (size_t k = 0; k < kRequests.size(); ++k) {
    const int64_t length = static_cast<int64_t>(kRequests[k].size());
    EXPECT_EQ(padded[k].hidden_shape, (std::vector<int64_t>{1, length, 4})) << "request " << k;
    ExpectNear(padded[k].hidden, alone[k].hidden, absl::StrCat("request ", k, " HIDDEN"));
    ExpectNear(padded[k].pooled, alone[k].pooled, absl::StrCat("request ", k, " POOLED"));
  }
  // (3 + 2 + 1 + 0) pad elements in each of IDS and MASK, of 32 staged in each.
  const std::string metrics = HttpGet(server_->metrics_port(), "/metrics");
  EXPECT_NE(metrics.find("coalesce_padding_elements_total{model=\"padded\",version=\"1\"} 12"),
            std::string::npos);
  EXPECT_NE(
      metrics.find("coalesce_padded_input_elements_total{model=\"padded\",version=\"1\"} 64"),
      std::string::npos);
}

TEST_F(PaddingIntegrationTest, AModelThatDeclaresNoPaddingNeverMixesLengths) {
  const std::vector<Encoded> answers = EncodeAtOnce("plain", kRequests);
  for (size_t k = 0; k < kRequests.size(); ++k) {
    EXPECT_EQ(answers[k].hidden_shape,
              (std::vector<int64_t>{1, static_cast<int64_t>(kRequests[k].size()), 4}));
  }
  // Four lengths, four batches of one, though the model would wait for four of one length.
  EXPECT_EQ(BatchSizes("plain"), (std::map<uint64_t, uint64_t>{{1, 4}}));
}

}  // namespace
}  // namespace coalesce
