// The one dtype tag of the CUDA engine's entry points (every family): the
// bindings read it from an array's __cuda_array_interface__ typestr, and each
// family accepts the tags it computes. Plain C++ (no CUDA headers).
#pragma once

#include <cstddef>

namespace deepret {

enum class DType : int { Bool, I8, I16, I32, I64, U8, U16, U32, U64, F16, F32, F64, C64, C128 };

// numpy's name of the dtype ("float32"), for error messages.
inline const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Bool: return "bool";
    case DType::I8: return "int8";
    case DType::I16: return "int16";
    case DType::I32: return "int32";
    case DType::I64: return "int64";
    case DType::U8: return "uint8";
    case DType::U16: return "uint16";
    case DType::U32: return "uint32";
    case DType::U64: return "uint64";
    case DType::F16: return "float16";
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::C64: return "complex64";
    case DType::C128: return "complex128";
  }
  return "unknown";
}

inline std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Bool: case DType::I8: case DType::U8: return 1;
    case DType::I16: case DType::U16: case DType::F16: return 2;
    case DType::I32: case DType::U32: case DType::F32: return 4;
    case DType::I64: case DType::U64: case DType::F64: case DType::C64: return 8;
    case DType::C128: return 16;
  }
  return 0;
}

// Integers wrap the same way signed or unsigned: kernels that only add and
// multiply compute a signed integer as its unsigned twin (same bits).
inline DType unsigned_twin(DType dtype) {
  switch (dtype) {
    case DType::I8: return DType::U8;
    case DType::I16: return DType::U16;
    case DType::I32: return DType::U32;
    case DType::I64: return DType::U64;
    default: return dtype;
  }
}

}  // namespace deepret
