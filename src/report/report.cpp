// The HTML report: inline SVG charts (no script, no network), the prediction grid as a data: URI.
#include "report/report.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "core/fs.h"
#include "report/visualize.h"

namespace petseg::report {
namespace {

using json = nlohmann::json;

std::string base64(const std::vector<uint8_t>& data) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  for (size_t i = 0; i < data.size(); i += 3) {
    uint32_t v = uint32_t(data[i]) << 16;
    if (i + 1 < data.size()) v |= uint32_t(data[i + 1]) << 8;
    if (i + 2 < data.size()) v |= data[i + 2];
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += i + 1 < data.size() ? k[(v >> 6) & 63] : '=';
    out += i + 2 < data.size() ? k[v & 63] : '=';
  }
  return out;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// "0.25", "10", "1e-05": a tick label as short as the step allows.
std::string tick_label(double v, double step) {
  if (std::fabs(v) < step * 1e-6) v = 0;
  std::ostringstream os;
  const int decimals = std::max(0, int(std::ceil(-std::log10(step) - 1e-9)));
  if (step < 1e-3 || std::fabs(v) >= 1e6) {
    os << std::setprecision(3) << v;
  } else {
    os << std::fixed << std::setprecision(decimals) << v;
  }
  return os.str();
}

// A line chart of one or more series over epochs: round ticks on the value axis, at most ten epoch labels.
std::string line_chart(const std::string& title, const std::vector<std::pair<std::string, std::vector<double>>>& series,
                       const char* const* colors) {
  const double W = 460, H = 240, L = 50, R = 15, T = 30, B = 35;
  double lo = 1e300, hi = -1e300;
  size_t n = 0;
  for (const auto& s : series) {
    for (double v : s.second) {
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    }
    n = std::max(n, s.second.size());
  }
  if (!(hi >= lo)) lo = 0, hi = 1;
  const std::vector<double> ticks = nice_ticks(lo, hi, 5);
  lo = ticks.front(), hi = ticks.back();
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : 1;
  auto X = [&](size_t i) { return L + (n > 1 ? (W - L - R) * double(i) / double(n - 1) : (W - L - R) / 2); };
  auto Y = [&](double v) { return T + (H - T - B) * (1 - (v - lo) / (hi - lo)); };
  std::ostringstream os;
  os << std::fixed << std::setprecision(1);
  os << "<svg viewBox='0 0 " << W << " " << H << "' width='" << W << "' height='" << H << "' role='img'>";
  os << "<text x='" << L << "' y='18' class='t'>" << escape(title) << "</text>";
  for (double v : ticks) {
    os << "<line x1='" << L << "' x2='" << W - R << "' y1='" << Y(v) << "' y2='" << Y(v) << "' class='g'/>";
    os << "<text x='" << L - 6 << "' y='" << Y(v) + 4 << "' class='a' text-anchor='end'>" << tick_label(v, step)
       << "</text>";
  }
  const size_t every = n <= 10 ? 1 : size_t(nice_ticks(0, double(n), 10)[1]);
  for (size_t i = 0; i < n; ++i) {
    if ((i + 1) % every != 0 && i != 0) continue;
    os << "<text x='" << X(i) << "' y='" << H - 12 << "' class='a' text-anchor='middle'>" << i + 1 << "</text>";
  }
  os << "<text x='" << (L + W - R) / 2 << "' y='" << H - 1 << "' class='a' text-anchor='middle'>epoch</text>";
  for (size_t k = 0; k < series.size(); ++k) {
    std::ostringstream pts;
    pts << std::fixed << std::setprecision(1);
    for (size_t i = 0; i < series[k].second.size(); ++i) {
      if (std::isfinite(series[k].second[i])) pts << X(i) << "," << Y(series[k].second[i]) << " ";
    }
    os << "<polyline fill='none' stroke='" << colors[k] << "' stroke-width='2.5' points='" << pts.str() << "'/>";
    for (size_t i = 0; i < series[k].second.size(); ++i) {
      if (!std::isfinite(series[k].second[i])) continue;
      os << "<circle cx='" << X(i) << "' cy='" << Y(series[k].second[i]) << "' r='3.5' fill='" << colors[k] << "'/>";
    }
    os << "<text x='" << W - R - 130 * (series.size() - k) + 20 << "' y='18' class='a' fill='" << colors[k]
       << "'>&#9632; " << escape(series[k].first) << "</text>";
  }
  os << "</svg>";
  return os.str();
}

// A configuration value as a reader writes it: 8, 0.02, resnet50, on/off, "-" for an empty one.
std::string option_value(const json& v) {
  if (v.is_boolean()) return v.get<bool>() ? "on" : "off";
  if (v.is_string()) return v.get<std::string>().empty() ? "-" : v.get<std::string>();
  if (v.is_array()) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ",") + option_value(x);
    return out.empty() ? "-" : out;
  }
  if (v.is_null()) return "-";
  return v.dump();
}

void write_config(std::ostream& os, const std::string& config_json) {
  os << "<h2>Configuration</h2><div class='row'>";
  const json config = json::parse(config_json);
  for (const auto& [part, title] : {std::pair<const char*, const char*>{"spec", "what the run is"},
                                    {"exec", "how its last start ran"}}) {
    if (!config.contains(part)) continue;
    os << "<table><tr><th colspan='2'>" << title << "</th></tr>";
    json one = {{part, config[part]}};
    for (const auto& [option, value] : option_rows(one.dump())) {
      os << "<tr><td><code>" << escape(option) << "</code></td><td>" << escape(value) << "</td></tr>";
    }
    os << "</table>";
  }
  os << "</div>";
}

const char* const kColors[] = {"#d9480f", "#1c7ed6", "#2b8a3e"};

void write_head(std::ostream& os, const ReportHeader& header, const json& config, size_t epochs_done) {
  const json& exec_part = config.contains("exec") ? config["exec"] : config;
  os << "<!doctype html><html><head><meta charset='utf-8'><title>petseg run " << escape(exec_part.value("name", ""))
     << "</title><style>"
     << "body{font:15px/1.45 system-ui,sans-serif;margin:28px auto;max-width:1000px;color:#222;padding:0 16px}"
     << "h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}"
     << ".sub{color:#666}.row{display:flex;flex-wrap:wrap;gap:18px}.card{border:1px solid #e3e3e3;border-radius:8px;"
     << "padding:10px 14px;background:#fafafa}.big{font-size:28px;font-weight:600}"
     << "table{border-collapse:collapse}td,th{padding:4px 12px;border-bottom:1px solid #eee;text-align:right}"
     << "td:first-child,th:first-child{text-align:left}.t{font:600 14px system-ui}.a{font:11px system-ui;fill:#555}"
     << ".g{stroke:#eee}.bar{height:22px;display:flex;border-radius:4px;overflow:hidden;margin:6px 0}"
     << ".bar div{color:#fff;font-size:11px;padding:3px 4px;white-space:nowrap;overflow:hidden}img{max-width:100%}"
     << ".grid{width:100%;max-width:760px;image-rendering:pixelated;border:1px solid #eee}"
     << "</style></head><body>";
  const json& spec = config.contains("spec") ? config["spec"] : config;
  const json& exec = config.contains("exec") ? config["exec"] : config;
  const std::string data = spec.value("data", "");
  os << "<h1>petseg &middot; " << escape(header.model) << " on " << escape(header.data_title) << "</h1>";
  os << "<div class='sub'>run <b>" << escape(exec.value("name", "")) << "</b> &middot; " << epochs_done << " of "
     << spec.value("epochs", 0) << " epochs &middot; data " << escape(data.empty() ? "the embedded synthetic set" : data)
     << "</div>";
}

// The headline numbers and both learning curves.
void write_summary(std::ostream& os, const std::vector<EpochRecord>& history) {
  std::vector<double> train_loss, miou, pixel_acc;
  for (const auto& e : history) {
    train_loss.push_back(e.train_loss);
    miou.push_back(100 * e.miou);
    pixel_acc.push_back(100 * e.pixel_accuracy);
  }
  const EpochRecord& last = history.back();
  double best = 0;
  for (double v : miou) best = std::max(best, std::isfinite(v) ? v : 0);
  os << "<div class='row' style='margin-top:14px'>";
  os << "<div class='card'><div class='sub'>mIoU, last epoch</div><div class='big'>" << 100 * last.miou
     << " %</div></div>";
  os << "<div class='card'><div class='sub'>best mIoU</div><div class='big'>" << best << " %</div></div>";
  os << "<div class='card'><div class='sub'>pixel accuracy</div><div class='big'>" << 100 * last.pixel_accuracy
     << " %</div></div>";
  os << "<div class='card'><div class='sub'>training speed</div><div class='big'>" << last.images_per_s
     << " img/s</div></div></div>";
  os << "<h2>Learning curves</h2><div class='row'>";
  os << line_chart("training loss", {{"train loss", train_loss}}, kColors);
  os << line_chart("validation (%)", {{"mIoU", miou}, {"pixel accuracy", pixel_acc}}, kColors + 1);
  os << "</div>";
}

void write_classes(std::ostream& os, const EpochRecord& last) {
  os << "<h2>Per-class IoU, last epoch</h2><table><tr><th>class</th><th>IoU %</th><th>accuracy %</th></tr>";
  for (size_t i = 0; i < last.iou.size(); ++i) {
    os << "<tr><td>" << escape(i < last.class_names.size() ? last.class_names[i] : std::to_string(i)) << "</td><td>"
       << 100 * last.iou[i] << "</td><td>" << (i < last.class_accuracy.size() ? 100 * last.class_accuracy[i] : NAN)
       << "</td></tr>";
  }
  os << "</table>";
}

void write_time_bar(std::ostream& os, const PhaseTimes& t) {
  const std::pair<const char*, double> phases[] = {{"data", t.data},           {"h2d", t.h2d},
                                                   {"forward", t.forward},     {"backward", t.backward},
                                                   {"optimizer", t.optimizer}, {"eval", t.eval}};
  static const char* kPhaseColors[] = {"#868e96", "#ae3ec9", "#1c7ed6", "#d9480f", "#2b8a3e", "#f08c00"};
  double total = 0;
  for (const auto& p : phases) total += p.second;
  os << "<h2>Where the time went, last epoch (" << total << " s)</h2>";
  if (t.launch_times) {
    os << "<div class='sub'>host clock on CUDA: h2d, forward, backward and optimizer are the time to launch their "
          "kernels; the GPU's own time per operator is in --profile's trace</div>";
  }
  os << "<div class='bar'>";
  for (int i = 0; i < 6; ++i) {
    const auto& [name, v] = phases[i];
    if (total <= 0 || v <= 0) continue;
    os << "<div style='width:" << 100 * v / total << "%;background:" << kPhaseColors[i] << "' title='" << name << " "
       << v << " s'>" << name << " " << std::setprecision(0) << 100 * v / total << "%" << std::setprecision(1)
       << "</div>";
  }
  os << "</div>";
}

// Blues from white (0) to dark blue (1), as the colour scale says.
std::string blue(double v) {
  v = std::clamp(v, 0.0, 1.0);
  const auto mix = [v](int a, int b) { return int(std::lround(a + (b - a) * v)); };
  std::ostringstream os;
  os << "rgb(" << mix(247, 8) << "," << mix(251, 48) << "," << mix(255, 107) << ")";
  return os.str();
}

// The last epoch's confusion matrix, each row (a target class) normalized to its pixels, class names on both axes,
// the row's share in each cell where it fits, a colour scale; beside it the per-class scores read from it.
void write_confusion(std::ostream& os, const EpochRecord& last) {
  const std::vector<std::vector<int64_t>>& m = last.confusion;
  const size_t n = m.size();
  if (n == 0) return;
  auto name = [&](size_t i) { return i < last.class_names.size() ? last.class_names[i] : std::to_string(i); };
  size_t longest = 1;
  for (size_t i = 0; i < n; ++i) longest = std::max(longest, name(i).size());
  const double cell = std::clamp(360.0 / double(n), 14.0, 56.0), label = std::min(150.0, 7.0 * double(longest) + 10);
  const double L = label + 22, T = label + 10, side = cell * double(n), W = L + side + 80, H = T + side + 30;
  os << "<h2>Confusion matrix, last epoch</h2><div class='sub'>rows: ground truth, each normalized to its pixels; "
        "columns: prediction</div><div class='row'>";
  os << "<svg viewBox='0 0 " << W << " " << H << "' width='" << W << "' height='" << H << "' role='img'>";
  os << "<defs><linearGradient id='cm-scale' x1='0' y1='1' x2='0' y2='0'><stop offset='0' stop-color='" << blue(0)
     << "'/><stop offset='1' stop-color='" << blue(1) << "'/></linearGradient></defs>";
  for (size_t r = 0; r < n; ++r) {
    int64_t row_pixels = 0;
    for (int64_t v : m[r]) row_pixels += v;
    const double y = T + cell * double(r);
    os << "<text x='" << L - 6 << "' y='" << y + cell / 2 + 4 << "' class='a' text-anchor='end'>" << escape(name(r))
       << "</text>";
    for (size_t c = 0; c < n && c < m[r].size(); ++c) {
      const double share = row_pixels > 0 ? double(m[r][c]) / double(row_pixels) : NAN;
      const double x = L + cell * double(c);
      os << "<rect x='" << x << "' y='" << y << "' width='" << cell << "' height='" << cell << "' fill='"
         << (std::isfinite(share) ? blue(share) : std::string("#eee")) << "'><title>" << escape(name(r)) << " as "
         << escape(name(c)) << ": " << m[r][c] << " pixels</title></rect>";
      if (cell >= 30 && std::isfinite(share)) {
        os << "<text x='" << x + cell / 2 << "' y='" << y + cell / 2 + 4 << "' class='a' text-anchor='middle'"
           << (share > 0.5 ? " style='fill:#fff'" : "") << ">" << std::setprecision(0) << 100 * share
           << std::setprecision(1) << "</text>";
      }
    }
  }
  for (size_t c = 0; c < n; ++c) {
    const double x = L + cell * (double(c) + 0.5);
    os << "<text transform='translate(" << x + 4 << "," << T - 6 << ") rotate(-60)' class='a'>" << escape(name(c))
       << "</text>";
  }
  os << "<text x='12' y='" << T + side / 2 << "' class='a' text-anchor='middle' transform='rotate(-90 12 "
     << T + side / 2 << ")'>ground truth</text>";
  os << "<text x='" << L + side / 2 << "' y='" << H - 6 << "' class='a' text-anchor='middle'>prediction</text>";
  const double bar = L + side + 24;
  os << "<rect x='" << bar << "' y='" << T << "' width='14' height='" << side << "' fill='url(#cm-scale)'/>";
  os << "<text x='" << bar + 18 << "' y='" << T + 8 << "' class='a'>100%</text><text x='" << bar + 18 << "' y='"
     << T + side << "' class='a'>0%</text></svg>";
  os << "<table><tr><th>class</th><th>Dice %</th><th>precision %</th><th>recall %</th></tr>";
  for (size_t i = 0; i < n; ++i) {
    auto at = [i](const std::vector<double>& v) { return i < v.size() ? 100 * v[i] : NAN; };
    os << "<tr><td>" << escape(name(i)) << "</td><td>" << at(last.dice) << "</td><td>" << at(last.precision)
       << "</td><td>" << at(last.recall) << "</td></tr>";
  }
  os << "</table></div>";
}

}  // namespace

void write_report(const std::filesystem::path& run_dir, const std::vector<EpochRecord>& history,
                  const ReportHeader& header, const std::string& config_json,
                  const std::filesystem::path& latest_grid_png) {
  const json config = json::parse(config_json);
  std::ostringstream os;
  os << std::fixed << std::setprecision(1);
  write_head(os, header, config, history.size());
  if (!history.empty()) {
    write_summary(os, history);
    write_classes(os, history.back());
    write_confusion(os, history.back());
    write_time_bar(os, history.back().times);
  }
  if (std::filesystem::exists(latest_grid_png)) {
    os << "<h2>Predictions (image | ground truth | prediction)</h2>";
    const std::vector<std::string> names = history.empty() ? std::vector<std::string>{} : history.back().class_names;
    const Palette& palette = header.palette;
    os << "<div class='sub'>";
    for (size_t i = 0; i < names.size(); ++i) {
      os << (i ? " &middot; " : "") << "<span style='color:" << css_color(class_color(int64_t(i), palette))
         << "'>&#9632;</span> " << escape(names[i]);
    }
    os << "</div>";
    os << "<img class='grid' alt='prediction grid' src='data:image/png;base64," << base64(read_file(latest_grid_png))
       << "'>";
  }
  write_config(os, config_json);
  os << "</body></html>\n";
  write_file_atomic(run_dir / "report.html", os.str());
}

std::vector<double> nice_ticks(double lo, double hi, int max_ticks) {
  max_ticks = std::max(max_ticks, 2);
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (hi < lo) std::swap(lo, hi);
  if (hi - lo < 1e-12 * std::max(1.0, std::fabs(lo))) {  // one value: a unit around it
    const double unit = std::pow(10.0, std::floor(std::log10(std::max(std::fabs(lo), 1e-12))));
    lo -= unit, hi += unit;
  }
  const double raw = (hi - lo) / max_ticks;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude * 10;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (magnitude * m >= raw * (1 - 1e-9)) {
      step = magnitude * m;
      break;
    }
  }
  const double first = std::floor(lo / step + 1e-9);
  const double last = std::max(first + 1, std::ceil(hi / step - 1e-9));
  std::vector<double> ticks;
  for (double k = first; k <= last; ++k) ticks.push_back(k * step);
  return ticks;
}

std::vector<std::pair<std::string, std::string>> option_rows(const std::string& config_json) {
  const json config = json::parse(config_json);
  std::vector<std::pair<std::string, std::string>> rows;
  for (const char* part : {"spec", "exec"}) {
    if (!config.contains(part)) continue;
    for (const auto& [key, value] : config[part].items()) {
      std::string option = "--" + key;
      std::replace(option.begin(), option.end(), '_', '-');
      rows.emplace_back(option, option_value(value));
    }
  }
  return rows;
}

}  // namespace petseg::report
