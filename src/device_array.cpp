// __cuda_array_interface__ parsing and the device state of a CUDA call
// (device_array.h).
#include "device_array.h"

#include <sstream>

#include "common/errors.h"

namespace deepret::bind {

namespace {

// DLPack device types that are CUDA memory: kDLCUDA, kDLCUDAManaged.
constexpr int kDLCUDA = 2, kDLCUDAManaged = 13;

std::string shape_text(const std::vector<index_t>& shape) {
  std::ostringstream out;
  out << '(';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) out << ',';
  out << ')';
  return out.str();
}

std::string type_name(py::handle object) {
  return py::str(py::type::handle_of(object).attr("__module__")).cast<std::string>() + "." +
         py::str(py::type::handle_of(object).attr("__qualname__")).cast<std::string>();
}

DType parse_typestr(const std::string& typestr, const std::string& name) {
  const auto bad = [&] { return TypeError(name + " has an unsupported dtype (typestr '" + typestr + "')"); };
  if (typestr.size() < 3) throw bad();
  const char order = typestr[0], kind = typestr[1];
  int size = 0;
  try {
    size = std::stoi(typestr.substr(2));
  } catch (const std::exception&) {
    throw bad();
  }
  // The engine reads native (little-endian) values; one byte has no order.
  const bool little = order == '<' || order == '|' || order == '=';
  if (!little && size != 1) throw TypeError(name + " must be in native byte order, got typestr '" + typestr + "'");
  switch (kind) {
    case 'b': if (size == 1) return DType::Bool; break;
    case 'i':
      if (size == 1) return DType::I8;
      if (size == 2) return DType::I16;
      if (size == 4) return DType::I32;
      if (size == 8) return DType::I64;
      break;
    case 'u':
      if (size == 1) return DType::U8;
      if (size == 2) return DType::U16;
      if (size == 4) return DType::U32;
      if (size == 8) return DType::U64;
      break;
    case 'f':
      if (size == 2) return DType::F16;
      if (size == 4) return DType::F32;
      if (size == 8) return DType::F64;
      break;
    case 'c':
      if (size == 8) return DType::C64;
      if (size == 16) return DType::C128;
      break;
    default: break;
  }
  throw bad();
}

void read_layout(DeviceArray& a, const py::dict& cai, py::handle object, bool writable);

}  // namespace

index_t DeviceArray::size() const {
  index_t total = 1;
  for (index_t d : shape) total *= d;
  return total;
}

DeviceArray device_array(py::handle object, const char* name, bool writable) {
  DeviceArray a;
  a.name = name;
  if (object.is_none() || !py::hasattr(object, "__cuda_array_interface__"))
    throw TypeError(a.name + " must be a CUDA device array (an object with __cuda_array_interface__, "
                    "e.g. a CuPy array), got " + type_name(object));
  const py::object interface = object.attr("__cuda_array_interface__");
  if (!py::isinstance<py::dict>(interface))
    throw TypeError(a.name + "'s __cuda_array_interface__ must be a dict");
  const py::dict cai = interface.cast<py::dict>();
  const auto get = [&](const char* key) -> py::object {
    if (!cai.contains(key))
      throw TypeError(a.name + "'s __cuda_array_interface__ has no '" + key + "'");
    return cai[key];
  };
  try {
    for (py::handle d : get("shape").cast<py::tuple>()) a.shape.push_back(d.cast<index_t>());
    const py::tuple data = get("data").cast<py::tuple>();
    check_type(data.size() == 2, a.name + "'s __cuda_array_interface__ 'data' must be (pointer, read-only)");
    a.ptr = reinterpret_cast<void*>(data[0].cast<std::uintptr_t>());
    a.readonly = data[1].cast<bool>();
    a.dtype = parse_typestr(get("typestr").cast<std::string>(), a.name);
    read_layout(a, cai, object, writable);
  } catch (const py::cast_error&) {
    throw TypeError(a.name + "'s __cuda_array_interface__ is malformed (a field of the wrong type)");
  }
  return a;
}

namespace {

void read_layout(DeviceArray& a, const py::dict& cai, py::handle object, bool writable) {
  for (index_t d : a.shape) check(d >= 0, a.name + " has a negative dimension in shape " + shape_text(a.shape));
  check(!cai.contains("mask") || cai["mask"].is_none(), a.name + " must not be a masked array");
  // C-contiguous: strides None, or the row-major strides (any stride on a
  // dimension of length 1, anything for an empty array).
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    const py::tuple strides = cai["strides"].cast<py::tuple>();
    check(strides.size() == a.shape.size(), a.name + "'s strides do not match its shape");
    if (a.size() > 0) {
      index_t expected = static_cast<index_t>(dtype_size(a.dtype));
      for (int d = a.ndim() - 1; d >= 0; --d) {
        const index_t stride = strides[static_cast<std::size_t>(d)].cast<index_t>();
        check(a.dim(d) == 1 || stride == expected, a.name + " must be C-contiguous");
        expected *= a.dim(d);
      }
    }
  }
  if (writable) check(!a.readonly, a.name + " must be writable");
  if (cai.contains("stream") && !cai["stream"].is_none()) {
    const auto stream = cai["stream"].cast<std::uintptr_t>();
    // Version 3 forbids 0 (ambiguous: 1 is the legacy default stream, 2 the per-thread one).
    check(stream != 0, a.name + "'s __cuda_array_interface__ names stream 0, which version 3 forbids");
    a.stream = stream;
  }
  if (py::hasattr(object, "__dlpack_device__")) {
    const py::tuple device = object.attr("__dlpack_device__")().cast<py::tuple>();
    const int type = device[0].cast<int>();
    check(type == kDLCUDA || type == kDLCUDAManaged,
          a.name + " must be on a CUDA device, got DLPack device type " + std::to_string(type));
    a.device = device[1].cast<int>();
  }
  // The kernels' typed loads need the element's alignment (a complex
  // number's: its parts'); a byte offset into a buffer may break it.
  const std::size_t align = dtype_size(a.dtype) / (a.dtype == DType::C64 || a.dtype == DType::C128 ? 2 : 1);
  check(reinterpret_cast<std::uintptr_t>(a.ptr) % align == 0,
        a.name + " must be aligned to its " + std::to_string(align) + "-byte elements");
}

}  // namespace

std::optional<DeviceArray> optional_device_array(py::handle object, const char* name, bool writable) {
  if (object.is_none()) return std::nullopt;
  return device_array(object, name, writable);
}

void require_dtype(const DeviceArray& a, std::initializer_list<DType> allowed) {
  std::string names;
  std::size_t i = 0;
  for (DType d : allowed) {
    if (d == a.dtype) return;
    names += (i == 0 ? "" : (i + 1 == allowed.size() ? " or " : ", "));
    names += dtype_name(d);
    ++i;
  }
  throw TypeError(a.name + " must be " + names + ", got " + dtype_name(a.dtype));
}

void require_same_dtype(const DeviceArray& a, const DeviceArray& b) {
  check_type(a.dtype == b.dtype, a.name + " and " + b.name + " must have the same dtype, got " +
                                     dtype_name(a.dtype) + " and " + dtype_name(b.dtype));
}

void require_shape(const DeviceArray& a, std::initializer_list<index_t> dims, const char* layout) {
  check(a.shape.size() == dims.size(), a.name + " must be " + std::to_string(dims.size()) + "-D " + layout +
                                           ", got shape " + shape_text(a.shape));
  std::vector<index_t> expected(dims);
  bool same = true;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    if (expected[i] < 0) expected[i] = a.shape[i];
    same = same && expected[i] == a.shape[i];
  }
  check(same, a.name + " must have shape " + shape_text(expected) + " " + layout + ", got " + shape_text(a.shape));
}

DeviceCall::DeviceCall(std::initializer_list<const DeviceArray*> arrays, std::uintptr_t stream) {
  // Devices the arrays state (__dlpack_device__) must agree before any runtime call.
  const DeviceArray* first = nullptr;
  for (const DeviceArray* a : arrays) {
    if (a == nullptr || a->device < 0) continue;
    if (first == nullptr) first = a;
    check(a->device == first->device, first->name + " and " + a->name +
                                          " must be on the same CUDA device, got devices " +
                                          std::to_string(first->device) + " and " + std::to_string(a->device));
  }
  // The others (and the device when none says) from the runtime.
  device_ = first ? first->device : -1;
  const DeviceArray* named = first;
  for (const DeviceArray* a : arrays) {
    if (a == nullptr || a->device >= 0 || a->ptr == nullptr) continue;
    const int device = cuda::device_of_pointer(a->ptr, a->name.c_str());
    if (device_ < 0) device_ = device, named = a;
    check(device == device_, named->name + " and " + a->name + " must be on the same CUDA device, got devices " +
                                 std::to_string(device_) + " and " + std::to_string(device));
  }
  // Only empty arrays: nothing is read or written, the current device does.
  if (device_ >= 0) guard_.emplace(device_);
  for (const DeviceArray* a : arrays)
    if (a != nullptr && a->stream) cuda::stream_wait(stream, *a->stream);
}

void* PyScratch::allocate(std::size_t bytes) {
  py::gil_scoped_acquire gil;
  try {
    py::object block = allocate_(bytes);
    const DeviceArray array = device_array(block, "scratch", true);
    check(array.size() * static_cast<index_t>(dtype_size(array.dtype)) >= static_cast<index_t>(bytes),
          "the scratch allocator returned fewer bytes than asked for");
    held_.push_back(std::move(block));
    return array.ptr;
  } catch (py::error_already_set& e) {
    // CuPy's OutOfMemoryError and the like: a MemoryError naming the request.
    const std::string reason = e.what();
    throw MemoryError("cannot allocate " + std::to_string(bytes) + " bytes of device scratch: " + reason);
  }
}

}  // namespace deepret::bind
