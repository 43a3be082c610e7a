// The raster and its bitmap font. Each glyph is five rows of three bits, the high bit leftmost.
#include <algorithm>

#include "halo/error.h"
#include "halo/png_image.h"

namespace halo {
namespace {

struct Glyph {
  char c;
  uint8_t rows[5];
};

const Glyph kFont[] = {
    {'0', {0b111, 0b101, 0b101, 0b101, 0b111}}, {'1', {0b010, 0b110, 0b010, 0b010, 0b111}},
    {'2', {0b111, 0b001, 0b111, 0b100, 0b111}}, {'3', {0b111, 0b001, 0b111, 0b001, 0b111}},
    {'4', {0b101, 0b101, 0b111, 0b001, 0b001}}, {'5', {0b111, 0b100, 0b111, 0b001, 0b111}},
    {'6', {0b111, 0b100, 0b111, 0b101, 0b111}}, {'7', {0b111, 0b001, 0b001, 0b001, 0b001}},
    {'8', {0b111, 0b101, 0b111, 0b101, 0b111}}, {'9', {0b111, 0b101, 0b111, 0b001, 0b111}},
    {'.', {0b000, 0b000, 0b000, 0b000, 0b010}}, {'-', {0b000, 0b000, 0b111, 0b000, 0b000}},
};

const Glyph* find_glyph(char c) {
  for (const Glyph& g : kFont) {
    if (g.c == c) return &g;
  }
  return nullptr;
}

}  // namespace

RgbImage::RgbImage(int width, int height, Rgb background) : width_(width), height_(height) {
  if (width < 1 || height < 1) fail("an image needs a positive size, got ", width, " x ", height);
  pixels_.resize(static_cast<size_t>(width) * height * 3);
  fill_rect(0, 0, width, height, background);
}

Rgb RgbImage::at(int x, int y) const {
  const size_t i = (static_cast<size_t>(y) * width_ + x) * 3;
  return {pixels_.at(i), pixels_.at(i + 1), pixels_.at(i + 2)};
}

void RgbImage::set(int x, int y, Rgb color) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
  const size_t i = (static_cast<size_t>(y) * width_ + x) * 3;
  pixels_[i] = color.r;
  pixels_[i + 1] = color.g;
  pixels_[i + 2] = color.b;
}

void RgbImage::fill_rect(int x0, int y0, int x1, int y1, Rgb color) {
  for (int y = std::max(y0, 0); y < std::min(y1, height_); ++y) {
    for (int x = std::max(x0, 0); x < std::min(x1, width_); ++x) set(x, y, color);
  }
}

void RgbImage::draw_text(int x, int y, const std::string& text, Rgb color, int scale) {
  for (char c : text) {
    if (const Glyph* g = find_glyph(c)) {
      for (int row = 0; row < 5; ++row) {
        for (int col = 0; col < 3; ++col) {
          if (g->rows[row] & (4 >> col)) {
            fill_rect(x + col * scale, y + row * scale, x + (col + 1) * scale, y + (row + 1) * scale, color);
          }
        }
      }
    }
    x += 4 * scale;
  }
}

int RgbImage::text_width(const std::string& text, int scale) {
  return text.empty() ? 0 : (4 * static_cast<int>(text.size()) - 1) * scale;
}

}  // namespace halo
