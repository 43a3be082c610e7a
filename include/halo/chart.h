// Charts drawn onto an RgbImage for the PNG reports (layer selection, benchmarks): a line chart
// (series of (x, y) points, linear or logarithmic axes, a legend) and a bar chart (one labelled
// bar per value, 0 at the base). Both share one look: a title above, grid lines at nice ticks
// (1, 2 or 5 x 10^n, or powers of ten on a log axis), tick labels in the bitmap font at scale 2.
// Panels are put side by side into one image with side_by_side. No torch here.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "halo/png_image.h"

namespace halo {

// The i-th color of a palette that keeps neighbouring series apart (cycles after ten).
Rgb series_color(size_t i);

struct LineSeries {
  std::string name;
  Rgb color;
  std::vector<std::pair<double, double>> points;  // drawn in order, joined by lines
};

struct LineChart {
  std::string title;                  // above the plot, e.g. "FORWARD MS"
  std::string x_label;                // below the x tick labels
  bool log_x = false, log_y = false;  // log axes need positive values; others are skipped
  // x ticks sit at every distinct x of the points; labels count with K = 1024 and M = 1048576
  // when that is exact ("4K"), else %g.
  std::vector<LineSeries> series;
};

RgbImage draw_line_chart(const LineChart& chart);

struct Bar {
  std::string label;  // under the bar (every n-th when labels would overlap)
  double value = 0;   // negative values are drawn as 0
  Rgb color;
  bool marked = false;  // a 2-pixel base in the bar's color, visible even at value 0
};

struct BarChart {
  std::string title;              // above the plot; none when empty
  int slot = 16, bar_width = 10;  // pixels per bar slot and per bar
  std::vector<Bar> bars;
};

RgbImage draw_bar_chart(const BarChart& chart);

// The images left to right, tops aligned, on white.
RgbImage side_by_side(const std::vector<RgbImage>& images);

// "4096" -> "4K", "1048576" -> "1M", "1536" -> "1536", "0.25" -> "0.25".
std::string count_label(double value);

}  // namespace halo
