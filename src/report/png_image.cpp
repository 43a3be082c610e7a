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
    {'A', {0b010, 0b101, 0b111, 0b101, 0b101}}, {'B', {0b110, 0b101, 0b110, 0b101, 0b110}},
    {'C', {0b011, 0b100, 0b100, 0b100, 0b011}}, {'D', {0b110, 0b101, 0b101, 0b101, 0b110}},
    {'E', {0b111, 0b100, 0b110, 0b100, 0b111}}, {'F', {0b111, 0b100, 0b110, 0b100, 0b100}},
    {'G', {0b011, 0b100, 0b101, 0b101, 0b011}}, {'H', {0b101, 0b101, 0b111, 0b101, 0b101}},
    {'I', {0b111, 0b010, 0b010, 0b010, 0b111}}, {'J', {0b001, 0b001, 0b001, 0b101, 0b010}},
    {'K', {0b101, 0b101, 0b110, 0b101, 0b101}}, {'L', {0b100, 0b100, 0b100, 0b100, 0b111}},
    {'M', {0b101, 0b111, 0b111, 0b101, 0b101}}, {'N', {0b110, 0b101, 0b101, 0b101, 0b101}},
    {'O', {0b010, 0b101, 0b101, 0b101, 0b010}}, {'P', {0b110, 0b101, 0b110, 0b100, 0b100}},
    {'Q', {0b010, 0b101, 0b101, 0b110, 0b011}}, {'R', {0b110, 0b101, 0b110, 0b101, 0b101}},
    {'S', {0b011, 0b100, 0b010, 0b001, 0b110}}, {'T', {0b111, 0b010, 0b010, 0b010, 0b010}},
    {'U', {0b101, 0b101, 0b101, 0b101, 0b111}}, {'V', {0b101, 0b101, 0b101, 0b101, 0b010}},
    {'W', {0b101, 0b101, 0b111, 0b111, 0b101}}, {'X', {0b101, 0b101, 0b010, 0b101, 0b101}},
    {'Y', {0b101, 0b101, 0b010, 0b010, 0b010}}, {'Z', {0b111, 0b001, 0b010, 0b100, 0b111}},
    {'/', {0b001, 0b001, 0b010, 0b100, 0b100}}, {':', {0b000, 0b010, 0b000, 0b010, 0b000}},
    {'%', {0b101, 0b001, 0b010, 0b100, 0b101}}, {'(', {0b010, 0b100, 0b100, 0b100, 0b010}},
    {')', {0b010, 0b001, 0b001, 0b001, 0b010}}, {'+', {0b000, 0b010, 0b111, 0b010, 0b000}},
    {'=', {0b000, 0b111, 0b000, 0b111, 0b000}}, {',', {0b000, 0b000, 0b000, 0b010, 0b100}},
    {'_', {0b000, 0b000, 0b000, 0b000, 0b111}}, {'[', {0b110, 0b100, 0b100, 0b100, 0b110}},
    {']', {0b011, 0b001, 0b001, 0b001, 0b011}},
};

// Lower-case letters are drawn as capitals.
const Glyph* find_glyph(char c) {
  if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
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

void RgbImage::draw_image(int x, int y, const RgbImage& image) {
  for (int row = 0; row < image.height(); ++row) {
    for (int col = 0; col < image.width(); ++col) set(x + col, y + row, image.at(col, row));
  }
}

int RgbImage::text_width(const std::string& text, int scale) {
  return text.empty() ? 0 : (4 * static_cast<int>(text.size()) - 1) * scale;
}

}  // namespace halo
