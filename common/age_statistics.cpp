#include "common/age_statistics.h"

#include <algorithm>
#include <cmath>

namespace brainage {
namespace {

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

}  // namespace

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size() || x.size() < 2) return std::nan("");
  const double mx = mean(x), my = mean(y);
  double sxy = 0, sxx = 0, syy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (!(sxx > 0) || !(syy > 0)) return std::nan("");
  return sxy / std::sqrt(sxx * syy);
}

BiasCorrection BiasCorrection::fit(const std::vector<double>& ages, const std::vector<double>& predictions,
                                   std::string* why_not) {
  auto refuse = [&](const std::string& reason) {
    if (why_not) *why_not = reason;
    return BiasCorrection{};
  };
  if (ages.size() != predictions.size() || ages.size() < 3)
    return refuse("a bias correction needs at least 3 subjects with age and prediction, got " +
                  std::to_string(std::min(ages.size(), predictions.size())));
  const double ma = mean(ages), mp = mean(predictions);
  double sap = 0, saa = 0;
  for (std::size_t i = 0; i < ages.size(); ++i) {
    sap += (ages[i] - ma) * (predictions[i] - mp);
    saa += (ages[i] - ma) * (ages[i] - ma);
  }
  if (!(saa > 1e-12)) return refuse("all ages are equal; a bias correction needs an age range");
  BiasCorrection c;
  c.slope = sap / saa;
  c.intercept = mp - c.slope * ma;
  c.n = ages.size();
  if (!c.usable() && why_not)
    *why_not = "fitted slope " + std::to_string(c.slope) + " is <= " + std::to_string(kMinBiasSlope) +
               " (predictions barely follow age; correcting would amplify errors)";
  return c;
}

nlohmann::json to_json(const BiasCorrection& c) {
  return {{"slope", c.slope}, {"intercept", c.intercept}, {"n", c.n}, {"applied", c.usable()}};
}

}  // namespace brainage
