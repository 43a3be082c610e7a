// Line and bar charts. Layout, top to bottom: title, plot (200 pixels high) with the y tick
// labels to its left, x tick labels, x label, legend. A linear y axis runs from 0 (or the
// smallest negative value) to a rounded-up maximum in four steps; a log axis spans whole decades.
// Points are 5-pixel squares, lines 2 pixels thick, the plot keeps 12 pixels free at both ends
// so that no point sits on an axis.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "halo/chart.h"

namespace halo {
namespace {

const Rgb kWhite{255, 255, 255}, kAxis{40, 40, 40}, kGrid{225, 225, 225};
constexpr int kScale = 2, kPlotHeight = 200, kLineWidth = 360, kInset = 12;

// The smallest 1, 2 or 5 x 10^n not below `value` (> 0).
double nice_ceiling(double value) {
  const double power = std::pow(10.0, std::floor(std::log10(value)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (value <= m * power * (1 + 1e-12)) return m * power;
  }
  return 10 * power;
}

// A tick label: whole numbers from 10^4 on in full ("37500", not "3.75e+04"), others with four
// significant digits at most, trailing zeros dropped.
std::string tick_label(double value) {
  char buf[32];
  if (std::fabs(value) >= 1e4 && std::fabs(value) < 1e12 && value == std::round(value)) {
    std::snprintf(buf, sizeof buf, "%.0f", value);
  } else {
    std::snprintf(buf, sizeof buf, "%.4g", value);
  }
  return buf;
}

// A value axis: where a value lands as a fraction of the axis (0 at the low end), and its ticks.
struct Axis {
  bool log = false;
  double lo = 0, hi = 1;
  std::vector<double> ticks;

  double fraction(double v) const {
    if (log) return (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo));
    return (v - lo) / (hi - lo);
  }
};

Axis value_axis(const std::vector<double>& values, bool log) {
  Axis axis;
  axis.log = log;
  if (log) {
    double lo = 1, hi = 1;
    bool any = false;
    for (double v : values) {
      if (!(v > 0) || !std::isfinite(v)) continue;
      lo = any ? std::min(lo, v) : v;
      hi = any ? std::max(hi, v) : v;
      any = true;
    }
    int first = static_cast<int>(std::floor(std::log10(lo) + 1e-9));
    int last = static_cast<int>(std::ceil(std::log10(hi) - 1e-9));
    if (last <= first) last = first + 1;
    axis.lo = std::pow(10.0, first);
    axis.hi = std::pow(10.0, last);
    for (int e = first; e <= last; ++e) axis.ticks.push_back(std::pow(10.0, e));
    return axis;
  }
  double lo = 0, hi = 0;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  axis.hi = hi > 0 ? nice_ceiling(hi) : (lo < 0 ? 0.0 : 1.0);
  axis.lo = lo < 0 ? -nice_ceiling(-lo) : 0.0;
  for (int t = 0; t <= 4; ++t) axis.ticks.push_back(axis.lo + (axis.hi - axis.lo) * t / 4);
  return axis;
}

int y_labels_width(const Axis& axis) {
  int width = 0;
  for (double t : axis.ticks) width = std::max(width, RgbImage::text_width(tick_label(t), kScale));
  return width;
}

// Title, horizontal grid lines, y ticks with labels, and both axes of a plot whose top-left
// corner is (left, top) and which is `width` x kPlotHeight.
void draw_frame(RgbImage& image, const std::string& title, const Axis& y, int left, int top, int width) {
  if (!title.empty()) image.draw_text(left, top - RgbImage::text_height(kScale) - 8, title, kAxis, kScale);
  const int base = top + kPlotHeight;
  for (double t : y.ticks) {
    const int py = base - static_cast<int>(std::lround(kPlotHeight * y.fraction(t)));
    image.fill_rect(left, py, left + width, py + 1, kGrid);
    image.fill_rect(left - 4, py, left, py + 1, kAxis);
    const std::string label = tick_label(t);
    image.draw_text(left - 8 - RgbImage::text_width(label, kScale), py - RgbImage::text_height(kScale) / 2, label,
                    kAxis, kScale);
  }
  image.fill_rect(left - 1, top, left, base + 1, kAxis);
  image.fill_rect(left - 1, base, left + width, base + 1, kAxis);
}

int title_height(const std::string& title) {
  return title.empty() ? 12 : 12 + RgbImage::text_height(kScale) + 8;
}

// A 2-pixel line from (x0, y0) to (x1, y1).
void draw_line(RgbImage& image, int x0, int y0, int x1, int y1, Rgb color) {
  const int steps = std::max({std::abs(x1 - x0), std::abs(y1 - y0), 1});
  for (int s = 0; s <= steps; ++s) {
    const int x = x0 + static_cast<int>(std::lround(static_cast<double>(x1 - x0) * s / steps));
    const int y = y0 + static_cast<int>(std::lround(static_cast<double>(y1 - y0) * s / steps));
    image.fill_rect(x, y, x + 2, y + 2, color);
  }
}

// Legend entries (a 10-pixel swatch, then the name) in rows no wider than `width`, starting at
// (left, top). Returns the height used, or only measures when `image` is null.
int draw_legend(RgbImage* image, const std::vector<LineSeries>& series, int left, int top, int width) {
  const int row_height = RgbImage::text_height(kScale) + 8;
  int x = 0, rows = series.empty() ? 0 : 1;
  for (const LineSeries& s : series) {
    const int entry = 14 + RgbImage::text_width(s.name, kScale) + 16;
    if (x > 0 && x + entry > width) x = 0, ++rows;
    if (image) {
      const int y = top + (rows - 1) * row_height;
      image->fill_rect(left + x, y, left + x + 10, y + 10, s.color);
      image->draw_text(left + x + 14, y, s.name, kAxis, kScale);
    }
    x += entry;
  }
  return rows * row_height;
}

}  // namespace

Rgb series_color(size_t i) {
  static const Rgb kPalette[] = {{70, 110, 170}, {230, 120, 30},  {60, 150, 70},   {200, 50, 50},  {140, 100, 180},
                                 {140, 90, 70},  {220, 110, 180}, {110, 110, 110}, {180, 180, 40}, {40, 180, 200}};
  return kPalette[i % (sizeof kPalette / sizeof kPalette[0])];
}

std::string count_label(double value) {
  const double rounded = std::round(value);
  if (rounded == value && rounded > 0) {
    const auto n = static_cast<long long>(rounded);
    if (n % (1LL << 20) == 0) return std::to_string(n >> 20) + "M";
    if (n % 1024 == 0) return std::to_string(n >> 10) + "K";
  }
  return tick_label(value);
}

RgbImage draw_line_chart(const LineChart& chart) {
  auto usable = [](double v, bool log) { return std::isfinite(v) && (!log || v > 0); };
  std::vector<double> xs, ys;
  for (const LineSeries& s : chart.series) {
    for (const auto& [x, y] : s.points) {
      if (!usable(x, chart.log_x) || !usable(y, chart.log_y)) continue;
      xs.push_back(x);
      ys.push_back(y);
    }
  }
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
  const Axis y = value_axis(ys, chart.log_y);
  const int left = y_labels_width(y) + 16, top = title_height(chart.title), right = 16;
  const int label_h = RgbImage::text_height(kScale);
  const int legend_h = draw_legend(nullptr, chart.series, left, 0, kLineWidth);
  const int height = top + kPlotHeight + 8 + label_h + (chart.x_label.empty() ? 0 : 8 + label_h) + 12 + legend_h + 8;
  RgbImage image(left + kLineWidth + right, height, kWhite);
  draw_frame(image, chart.title, y, left, top, kLineWidth);
  const int base = top + kPlotHeight;

  auto x_of = [&](double x) {
    if (xs.size() < 2) return left + kLineWidth / 2;
    const double lo = chart.log_x ? std::log10(xs.front()) : xs.front();
    const double hi = chart.log_x ? std::log10(xs.back()) : xs.back();
    const double v = chart.log_x ? std::log10(x) : x;
    return left + kInset + static_cast<int>(std::lround((kLineWidth - 2 * kInset) * (v - lo) / (hi - lo)));
  };
  auto y_of = [&](double v) { return base - static_cast<int>(std::lround(kPlotHeight * y.fraction(v))); };

  int free_from = -1000000;  // x tick labels skip any that would overlap the previous one
  for (double x : xs) {
    const int px = x_of(x);
    image.fill_rect(px, base, px + 1, base + 4, kAxis);
    const std::string label = count_label(x);
    const int w = RgbImage::text_width(label, kScale);
    if (px - w / 2 < free_from) continue;
    image.draw_text(px - w / 2, base + 8, label, kAxis, kScale);
    free_from = px - w / 2 + w + 8;
  }
  int below = base + 8 + label_h;
  if (!chart.x_label.empty()) {
    image.draw_text(left + (kLineWidth - RgbImage::text_width(chart.x_label, kScale)) / 2, below + 8, chart.x_label,
                    kAxis, kScale);
    below += 8 + label_h;
  }
  for (const LineSeries& s : chart.series) {
    bool have_previous = false;
    int px0 = 0, py0 = 0;
    for (const auto& [x, v] : s.points) {
      if (!usable(x, chart.log_x) || !usable(v, chart.log_y)) continue;
      const int px = x_of(x), py = y_of(v);
      if (have_previous) draw_line(image, px0, py0, px, py, s.color);
      image.fill_rect(px - 2, py - 2, px + 3, py + 3, s.color);
      px0 = px, py0 = py, have_previous = true;
    }
  }
  draw_legend(&image, chart.series, left, below + 12, kLineWidth);
  return image;
}

RgbImage draw_bar_chart(const BarChart& chart) {
  std::vector<double> values;
  for (const Bar& b : chart.bars) values.push_back(std::max(b.value, 0.0));
  const Axis y = value_axis(values, false);
  const int left = y_labels_width(y) + 16, top = title_height(chart.title), right = 12;
  const int plot_width = std::max(1, static_cast<int>(chart.bars.size())) * chart.slot;
  const int bottom = 12 + RgbImage::text_height(kScale) + 8;
  const int title_width = RgbImage::text_width(chart.title, kScale);
  RgbImage image(std::max(left + plot_width + right, left + title_width + right), top + kPlotHeight + bottom, kWhite);
  draw_frame(image, chart.title, y, left, top, plot_width);
  const int base = top + kPlotHeight;
  int widest = 0;
  for (const Bar& b : chart.bars) widest = std::max(widest, RgbImage::text_width(b.label, kScale));
  const int every = std::max(1, (widest + 4 + chart.slot - 1) / chart.slot);
  for (size_t i = 0; i < chart.bars.size(); ++i) {
    const Bar& b = chart.bars[i];
    const int x = left + static_cast<int>(i) * chart.slot + (chart.slot - chart.bar_width) / 2;
    const int height =
        static_cast<int>(std::lround(kPlotHeight * std::clamp(y.fraction(std::max(b.value, 0.0)), 0.0, 1.0)));
    image.fill_rect(x, base - height, x + chart.bar_width, base, b.color);
    if (b.marked) image.fill_rect(x, base - 2, x + chart.bar_width, base, b.color);
    if (i % every == 0) {
      const int center = left + static_cast<int>(i) * chart.slot + chart.slot / 2;
      image.draw_text(center - RgbImage::text_width(b.label, kScale) / 2, base + 8, b.label, kAxis, kScale);
    }
  }
  image.fill_rect(left - 1, base, left + plot_width, base + 1, kAxis);  // the base over the bars' feet
  return image;
}

RgbImage side_by_side(const std::vector<RgbImage>& images) {
  int width = 0, height = 1;
  for (const RgbImage& i : images) width += i.width(), height = std::max(height, i.height());
  RgbImage out(std::max(width, 1), height, kWhite);
  int x = 0;
  for (const RgbImage& i : images) {
    out.draw_image(x, 0, i);
    x += i.width();
  }
  return out;
}

}  // namespace halo
