// Elementwise functions of 16-bit floats by table lookup.
//
// A function of one bfloat16 (or float16) value has only 65,536 inputs, so it can be tabulated
// once, exactly as a reference implementation computes it, and applied by lookup: the result is
// bit-identical to the reference and costs one load per element.  PyTorch's CPU tanh on bfloat16
// runs about 3x slower than its float tanh (and 7x slower than a bfloat16 multiply), which made it
// the largest elementwise cost of a bf16 MolGAN critic step; its table is built from PyTorch's own
// tanh, so the lookup changes no result.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qboson {

// y[i] = table[x[i]] for i < n.  `table` has 65,536 entries and one more of padding (65,537 in
// all), which lets a vector gather read the last entry as a 32-bit word; x and y may be the same array.
// Results do not depend on `threads`.
void lookup16(const std::uint16_t* x, std::uint16_t* y, std::size_t n, const std::uint16_t* table, int threads);

}  // namespace qboson
