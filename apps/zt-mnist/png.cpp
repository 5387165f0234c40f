// PNG encoding (see png.h): signature, IHDR, IDAT (filter byte 0 per row, zlib stream), IEND.
#include "png.h"

#include <zlib.h>

#include <fstream>

#include "core/error.h"

namespace zt {
namespace {

void put_u32(std::string& out, uint32_t v) {  // PNG integers are big-endian
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(char((v >> shift) & 0xFF));
}

// length, type, data, CRC32 over type and data.
void put_chunk(std::string& out, const char type[4], const std::string& data) {
  put_u32(out, uint32_t(data.size()));
  const std::string body = std::string(type, 4) + data;
  out += body;
  put_u32(out, uint32_t(crc32(0L, reinterpret_cast<const Bytef*>(body.data()), uInt(body.size()))));
}

}  // namespace

std::string encode_png_gray(const std::vector<uint8_t>& pixels, int width, int height) {
  ZT_CHECK(width > 0 && height > 0, "encode_png_gray: expected a positive size, got ", width, "x", height);
  ZT_CHECK(pixels.size() == size_t(width) * size_t(height), "encode_png_gray: a ", width, "x", height,
           " image needs ", size_t(width) * size_t(height), " pixels, got ", pixels.size());
  std::string out = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put_u32(ihdr, uint32_t(width));
  put_u32(ihdr, uint32_t(height));
  ihdr += std::string("\x08\x00\x00\x00\x00", 5);  // bit depth 8, greyscale, deflate, filter 0, no interlace
  put_chunk(out, "IHDR", ihdr);
  std::string raw;  // each scanline starts with its filter type (0: none)
  raw.reserve(size_t(height) * (size_t(width) + 1));
  for (int y = 0; y < height; ++y) {
    raw.push_back('\0');
    raw.append(reinterpret_cast<const char*>(pixels.data()) + size_t(y) * size_t(width), size_t(width));
  }
  uLongf size = compressBound(uLong(raw.size()));
  std::string compressed(size, '\0');
  const int rc = compress2(reinterpret_cast<Bytef*>(compressed.data()), &size,
                           reinterpret_cast<const Bytef*>(raw.data()), uLong(raw.size()), Z_BEST_COMPRESSION);
  ZT_CHECK(rc == Z_OK, "encode_png_gray: zlib compress2 failed with code ", rc);
  compressed.resize(size);
  put_chunk(out, "IDAT", compressed);
  put_chunk(out, "IEND", "");
  return out;
}

void write_png_gray(const std::string& path, const std::vector<uint8_t>& pixels, int width, int height) {
  const std::string bytes = encode_png_gray(pixels, width, height);
  std::ofstream out(path, std::ios::binary);
  ZT_CHECK(out.good(), "--png: cannot write '", path, "'");
  out.write(bytes.data(), std::streamsize(bytes.size()));
  ZT_CHECK(out.good(), "--png: writing '", path, "' failed");
}

}  // namespace zt
