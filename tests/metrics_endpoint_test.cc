#include "server/metrics_endpoint.h"

#include <prometheus/counter.h>

#include "gtest/gtest.h"
#include "tests/http_get.h"

namespace coalesce {
namespace {

TEST(MetricsEndpointTest, ServesTheRegistryOnAPickedPort) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto& family = prometheus::BuildCounter().Name("test_total").Help("h").Register(*registry);
  family.Add({{"k", "v"}}).Increment(3);
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  ASSERT_GT((*endpoint)->port(), 0);
  std::string page = HttpGet((*endpoint)->port(), "/metrics");
  EXPECT_EQ(MetricValue(page, "test_total{k=\"v\"}"), 3);
  family.Add({{"k", "v"}}).Increment();
  EXPECT_EQ(MetricValue(HttpGet((*endpoint)->port(), "/metrics"), "test_total{k=\"v\"}"), 4);
}

TEST(MetricsEndpointTest, OtherPathsAreNotFound) {
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", std::make_shared<prometheus::Registry>());
  ASSERT_TRUE(endpoint.ok());
  EXPECT_EQ(HttpGet((*endpoint)->port(), "/secret"), "metrics are at /metrics\n");
}

TEST(MetricsEndpointTest, BusyPortAndBadAddressAreClearErrors) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto first = MetricsEndpoint::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(first.ok());
  auto second =
      MetricsEndpoint::Start(absl::StrCat("127.0.0.1:", (*first)->port()), registry);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("in use"), std::string::npos) << second.status();
  EXPECT_EQ(MetricsEndpoint::Start("no-port", registry).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coalesce
