// A minimal PNG encoder for zt-mnist's predict mode: 8-bit greyscale, one IDAT compressed with
// zlib, CRC32 from zlib (PNG specification, ISO/IEC 15948).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace zt {

// The bytes of a PNG of a width x height 8-bit greyscale image (pixels row-major, 0 = black).
std::string encode_png_gray(const std::vector<uint8_t>& pixels, int width, int height);

// Writes encode_png_gray(...) to path; an error names the path when it cannot be written.
void write_png_gray(const std::string& path, const std::vector<uint8_t>& pixels, int width, int height);

}  // namespace zt
