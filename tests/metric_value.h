#ifndef COALESCE_TESTS_METRIC_VALUE_H_
#define COALESCE_TESTS_METRIC_VALUE_H_

#include <map>
#include <optional>
#include <string>

#include <prometheus/metric_type.h>
#include <prometheus/registry.h>

namespace coalesce {

// The value of counter or gauge `name` in `registry` whose labels are exactly `labels`, or
// nothing if there is no such series.
inline std::optional<double> MetricValue(const prometheus::Registry& registry,
                                         const std::string& name,
                                         const std::map<std::string, std::string>& labels) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      std::map<std::string, std::string> got;
      for (const auto& label : metric.label) got[label.name] = label.value;
      if (got != labels) continue;
      return family.type == prometheus::MetricType::Counter ? metric.counter.value
                                                             : metric.gauge.value;
    }
  }
  return std::nullopt;
}

}  // namespace coalesce

#endif  // COALESCE_TESTS_METRIC_VALUE_H_
