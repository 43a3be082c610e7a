// PNG encoding (ISO/IEC 15948): chunks are length (4 bytes, big-endian), type, data, CRC-32
// of type + data. Scanlines all use filter 0 (none); deflate does the compressing.
#include <zlib.h>

#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/png_image.h"

namespace halo {
namespace {

void put_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xFF);
}

void put_chunk(std::string& out, const char* type, const std::string& data) {
  put_u32(out, static_cast<uint32_t>(data.size()));
  const std::string body = std::string(type, 4) + data;
  out += body;
  put_u32(out, static_cast<uint32_t>(
                   crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
}

}  // namespace

std::string encode_png(const RgbImage& image) {
  const size_t row_bytes = static_cast<size_t>(image.width()) * 3;
  std::string raw;
  raw.reserve((row_bytes + 1) * image.height());
  const auto& pixels = image.pixels();
  for (int y = 0; y < image.height(); ++y) {
    raw += '\0';  // filter type 0
    raw.append(reinterpret_cast<const char*>(pixels.data()) + y * row_bytes, row_bytes);
  }
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::string packed(packed_size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size, reinterpret_cast<const Bytef*>(raw.data()),
                static_cast<uLong>(raw.size()), Z_BEST_COMPRESSION) != Z_OK) {
    fail("zlib could not compress a ", image.width(), " x ", image.height(), " image");
  }
  packed.resize(packed_size);

  std::string ihdr;
  put_u32(ihdr, static_cast<uint32_t>(image.width()));
  put_u32(ihdr, static_cast<uint32_t>(image.height()));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bits, RGB, deflate, filter 0, no interlace
  std::string png("\x89PNG\r\n\x1a\n", 8);
  put_chunk(png, "IHDR", ihdr);
  put_chunk(png, "IDAT", packed);
  put_chunk(png, "IEND", "");
  return png;
}

void write_png(const std::string& path, const RgbImage& image) {
  write_file_atomic(path, encode_png(image));
}

}  // namespace halo
