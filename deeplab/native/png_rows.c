/* PNG row unfiltering and value counting for 8-bit single-channel images (label masks).
 *
 * Built on first use by deeplab/native/__init__.py (cc -O3 -shared) and called through ctypes:
 * no Python headers needed. Pillow does the same work about 4x slower on label masks because
 * its zlib inflate is slow on long runs; the caller inflates with zlib-ng and hands the
 * filtered rows here.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Reverses the five PNG filters (spec section 9) for 1 byte per pixel.
 *
 * src:  height rows of 1 filter-type byte + width bytes (the inflated IDAT stream)
 * dst:  height * width bytes for the pixel values, or NULL when only the counts are wanted
 *       (then two rows are kept: checking a mask needs no full copy of it)
 * hist: 256 counters, incremented by each value's pixel count
 *
 * Returns 0, row + 1 of the first row whose filter type byte is not 0..4, or -1 when out of
 * memory.
 */
static void count_values(const uint8_t *row, int64_t n, uint64_t *hist) {
  /* Masks are long runs of one value: count 8 equal bytes at a time where possible. */
  int64_t i = 0;
  while (i < n) {
    uint8_t v = row[i];
    uint64_t word = 0x0101010101010101ULL * v, chunk;
    int64_t start = i;
    while (i + 8 <= n && (memcpy(&chunk, row + i, 8), chunk == word)) i += 8;
    while (i < n && row[i] == v) i++;
    hist[v] += (uint64_t)(i - start);
  }
}

int64_t deeplab_unfilter_8bit(const uint8_t *src, uint8_t *dst, int64_t height, int64_t width,
                              uint64_t *hist) {
  uint8_t *rows = NULL;
  if (!dst && !(rows = malloc((size_t)(2 * width + 1)))) return -1;
  const uint8_t *prev = NULL;
  for (int64_t r = 0; r < height; r++) {
    const uint8_t *in = src + r * (width + 1) + 1;
    uint8_t *out = dst ? dst + r * width : rows + (r & 1) * width;
    uint8_t a = 0, c = 0;
    switch (src[r * (width + 1)]) {
      case 0: /* None */
        memcpy(out, in, (size_t)width);
        break;
      case 1: /* Sub */
        for (int64_t x = 0; x < width; x++) out[x] = a = (uint8_t)(in[x] + a);
        break;
      case 2: /* Up */
        if (prev) {
          for (int64_t x = 0; x < width; x++) out[x] = (uint8_t)(in[x] + prev[x]);
        } else {
          memcpy(out, in, (size_t)width);
        }
        break;
      case 3: /* Average */
        for (int64_t x = 0; x < width; x++) {
          unsigned b = prev ? prev[x] : 0;
          out[x] = a = (uint8_t)(in[x] + ((a + b) >> 1));
        }
        break;
      case 4: /* Paeth */
        for (int64_t x = 0; x < width; x++) {
          int b = prev ? prev[x] : 0;
          int p = a + b - c;
          int pa = p > a ? p - a : a - p;
          int pb = p > b ? p - b : b - p;
          int pc = p > c ? p - c : c - p;
          int pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          out[x] = a = (uint8_t)(in[x] + pred);
          c = (uint8_t)b;
        }
        break;
      default:
        free(rows);
        return r + 1;
    }
    count_values(out, width, hist);
    prev = out;
  }
  free(rows);
  return 0;
}
