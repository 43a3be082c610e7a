// A small RGB raster for charts (rectangles, copies of other images, and a 3x5 bitmap font of
// digits, capitals (lower case drawn as capitals) and . - / : % ( ) [ ] + = , _) and
// its PNG encoding: signature, IHDR (8-bit RGB), one IDAT (zlib stream of scanlines, each with
// filter byte 0) and IEND, every chunk with its CRC-32. zlib does the deflate and the CRC.
// No torch here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace halo {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

class RgbImage {
 public:
  RgbImage(int width, int height, Rgb background);

  int width() const { return width_; }
  int height() const { return height_; }
  // Row-major r, g, b bytes, top row first.
  const std::vector<uint8_t>& pixels() const { return pixels_; }
  Rgb at(int x, int y) const;

  // Pixels outside the image are skipped.
  void set(int x, int y, Rgb color);
  // The rectangle [x0, x1) x [y0, y1).
  void fill_rect(int x0, int y0, int x1, int y1, Rgb color);
  // Copies `image` with its top-left corner at (x, y).
  void draw_image(int x, int y, const RgbImage& image);
  // Text with its top-left corner at (x, y), each font pixel a scale x scale square; characters
  // the font lacks leave a blank cell.
  void draw_text(int x, int y, const std::string& text, Rgb color, int scale = 1);
  // Width in pixels that draw_text covers (a one-pixel gap after each character, none after the last).
  static int text_width(const std::string& text, int scale = 1);
  static int text_height(int scale = 1) { return 5 * scale; }

 private:
  int width_, height_;
  std::vector<uint8_t> pixels_;
};

// The bytes of a PNG file holding the image.
std::string encode_png(const RgbImage& image);
// encode_png written atomically to `path`.
void write_png(const std::string& path, const RgbImage& image);

}  // namespace halo
