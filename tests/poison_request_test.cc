// A poison request (a value the model raises on, asks a huge allocation for, or answers in another
// type than declared) sent among many concurrent valid ones, over real gRPC to a TorchScript
// model the test writes: only the poison request gets the error, every valid one its own answer.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/blocking_counter.h"
#include "tests/http_get.h"
#include "tests/repository_server.h"

namespace coalesce {
namespace {

// Y = 2 * X + 1 for two FP32 values a row, batched up to 16 with a queue delay that fills
// batches. Poison: a value below -100 makes it raise, one above 1e6 makes it allocate 2^50 bytes
// (more than any machine's address space: it fails at once, never swaps), 777 makes it answer
// INT64 for the FP32 output.
constexpr char kPoisonConfig[] = R"pb(name: "poison"
  platform: "pytorch_libtorch"
  max_batch_size: 16
  input [ { name: "X" data_type: TYPE_FP32 dims: [ 2 ] } ]
  output [ { name: "Y" data_type: TYPE_FP32 dims: [ 2 ] } ]
  dynamic_batching { max_queue_delay_microseconds: 20000 }
)pb";
constexpr char kPoisonForward[] = R"py(
def forward(self, x):
    assert not bool((x < -100.0).any()), 'poison input: a value below -100'
    if bool((x > 1000000.0).any()):
        hog = torch.empty([1 << 48])
        return hog[:x.numel()].view(x.size(0), 2)
    if bool((x == 777.0).any()):
        return x.long()
    return x * 2.0 + 1.0
)py";

constexpr int kValid = 200;

class PoisonRequestTest : public RepositoryServerTest {
 protected:
  void SetUp() override {
    RepositoryServerTest::SetUp();
    absl::Status written = WriteRepositoryModel(root_, "poison", kPoisonConfig, 1, kPoisonForward);
    ASSERT_TRUE(written.ok()) << written;
    Start(ControlMode::kNone, {"*"});
  }

  struct Call {
    inference::ModelInferRequest request;
    inference::ModelInferResponse response;
    grpc::ClientContext context;
    grpc::Status status;
  };

  // One row {value, value}.
  static void Fill(Call& call, float value) {
    call.request.set_model_name("poison");
    auto* input = call.request.add_inputs();
    input->set_name("X");
    input->set_datatype("FP32");
    input->add_shape(1);
    input->add_shape(2);
    const float row[2] = {value, value};
    call.request.add_raw_input_contents(std::string(reinterpret_cast<const char*>(row), 8));
    call.context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  }

  // Sends kValid valid requests (values 0 .. kValid-1) with `poison` among them at once and
  // checks every valid answer; returns the poison requests' statuses.
  std::vector<grpc::Status> SendAmongValid(const std::vector<float>& poison) {
    std::vector<Call> calls(kValid + poison.size());
    std::vector<float> values;
    for (int i = 0; i < kValid; ++i) values.push_back(static_cast<float>(i));
    // Spread through the traffic, so that each shares a batch with valid requests.
    for (size_t p = 0; p < poison.size(); ++p) {
      values.insert(values.begin() + (p + 1) * kValid / (poison.size() + 1), poison[p]);
    }
    absl::BlockingCounter done(static_cast<int>(calls.size()));
    for (size_t i = 0; i < calls.size(); ++i) {
      Fill(calls[i], values[i]);
      stub_->async()->ModelInfer(&calls[i].context, &calls[i].request, &calls[i].response,
                                 [&done, &call = calls[i]](grpc::Status status) {
                                   call.status = std::move(status);
                                   done.DecrementCount();
                                 });
    }
    done.Wait();
    std::vector<grpc::Status> poisoned;
    int answered = 0;
    for (size_t i = 0; i < calls.size(); ++i) {
      const float value = values[i];
      if (value < 0 || value >= kValid) {
        poisoned.push_back(calls[i].status);
        continue;
      }
      EXPECT_TRUE(calls[i].status.ok()) << "value " << value << ": "
                                        << calls[i].status.error_message();
      if (!calls[i].status.ok()) continue;
      std::vector<float> y(2);
      const std::string& raw = calls[i].response.raw_output_contents(0);
      EXPECT_EQ(raw.size(), 8u) << "value " << value;
      std::memcpy(y.data(), raw.data(), std::min<size_t>(raw.size(), 8));
      EXPECT_EQ(y, (std::vector<float>{2 * value + 1, 2 * value + 1})) << "value " << value;
      ++answered;
    }
    EXPECT_EQ(answered, kValid);
    return poisoned;
  }

  // coalesce_split_batches_total{model="poison",version="1"} from the metrics endpoint.
  double SplitBatches() {
    const std::string body = HttpGet(server_->metrics_port(), "/metrics");
    for (absl::string_view line : absl::StrSplit(body, '\n')) {
      constexpr absl::string_view kSeries =
          "coalesce_split_batches_total{model=\"poison\",version=\"1\"} ";
      double value = 0;
      if (absl::ConsumePrefix(&line, kSeries) && absl::SimpleAtod(line, &value)) return value;
    }
    return -1;
  }
};

TEST_F(PoisonRequestTest, ARequestTheModelRaisesOnFailsAloneAndEveryValidOneIsAnswered) {
  std::vector<grpc::Status> poisoned = SendAmongValid({-1000, -2000, -3000});
  ASSERT_EQ(poisoned.size(), 3u);
  for (const grpc::Status& status : poisoned) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
    EXPECT_NE(status.error_message().find("model 'poison' failed"), std::string::npos)
        << status.error_message();
    EXPECT_NE(status.error_message().find("poison input: a value below -100"), std::string::npos)
        << status.error_message();
  }
  EXPECT_GE(SplitBatches(), 1);
}

TEST_F(PoisonRequestTest, ARequestForAHugeAllocationFailsAloneAndEveryValidOneIsAnswered) {
  std::vector<grpc::Status> poisoned = SendAmongValid({1e7f, 2e7f});
  ASSERT_EQ(poisoned.size(), 2u);
  for (const grpc::Status& status : poisoned) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
    EXPECT_NE(status.error_message().find("1125899906842624 bytes"), std::string::npos)
        << status.error_message();
  }
  EXPECT_GE(SplitBatches(), 1);
}

TEST_F(PoisonRequestTest, AnOutputOfAnotherTypeFailsItsRequestNamingBothTypes) {
  std::vector<grpc::Status> poisoned = SendAmongValid({777});
  ASSERT_EQ(poisoned.size(), 1u);
  EXPECT_EQ(poisoned[0].error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_NE(poisoned[0].error_message().find(
                "model 'poison' returned INT64 for output 'Y', declared FP32"),
            std::string::npos)
      << poisoned[0].error_message();
}

}  // namespace
}  // namespace coalesce
