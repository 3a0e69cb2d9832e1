// Row orders for the batched product: reverse Cuthill-McKee, and how local
// an order makes the graph (which decides whether relabelling pays).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/buffer.h"
#include "common/errors.h"
#include "diffusion/cg.h"

namespace deepret::diffusion {

template <class I>
bool reverse_cuthill_mckee(index_t n, const I* indptr, const I* indices, I* order,
                           index_t max_front) {
  bool in_range = true;
  for (I e = 0; e < indptr[n]; ++e) in_range = in_range && indices[e] >= 0 && indices[e] < n;
  check(in_range, "locality_order: W's column indices must lie in [0, n)");
  Scratch<I> degree(n);
  for (index_t i = 0; i < n; ++i) degree[i] = indptr[i + 1] - indptr[i];
  // Components start from their lowest-degree node: the nodes by degree
  // (counting sort; ties by index).
  Scratch<index_t> count(n + 2, 0);
  for (index_t i = 0; i < n; ++i) ++count[std::min<index_t>(degree[i], n) + 1];
  for (index_t d = 0; d <= n; ++d) count[d + 1] += count[d];
  Scratch<I> by_degree(n);
  for (index_t i = 0; i < n; ++i) by_degree[count[std::min<index_t>(degree[i], n)]++] = I(i);

  // Breadth-first from each start, each node's unvisited neighbours in
  // increasing degree (Cuthill-McKee); `order` doubles as the queue.
  Scratch<char> visited(n, 0);
  Scratch<I> fresh;
  index_t head = 0, tail = 0;
  for (const I start : by_degree) {
    if (visited[start]) continue;
    visited[start] = 1;
    order[tail++] = start;
    while (head < tail) {
      const I node = order[head++];
      fresh.clear();
      for (I e = indptr[node]; e < indptr[node + 1]; ++e) {
        const I next = indices[e];
        if (!visited[next]) {
          visited[next] = 1;
          fresh.push_back(next);
        }
      }
      std::sort(fresh.begin(), fresh.end(), [&](I a, I b) {
        return degree[a] != degree[b] ? degree[a] < degree[b] : a < b;
      });
      for (const I next : fresh) order[tail++] = next;
      // Nodes queued but not yet expanded: the band the order will need.
      if (max_front > 0 && tail - head > max_front) return false;
    }
  }
  std::reverse(order, order + n);
  return true;
}

template <class I>
double near_fraction(index_t n, const I* indptr, const I* indices, const I* order,
                     index_t window) {
  Scratch<index_t> position(n);
  for (index_t i = 0; i < n; ++i) position[order[i]] = i;
  // Every 8th row is a fair sample (rows come in the caller's order).
  index_t near = 0, total = 0;
  for (index_t i = 0; i < n; i += 8)
    for (I e = indptr[i]; e < indptr[i + 1]; ++e, ++total)
      near += std::llabs(position[i] - position[indices[e]]) < window;
  return total > 0 ? double(near) / double(total) : 1.0;
}

template bool reverse_cuthill_mckee<std::int32_t>(index_t, const std::int32_t*,
                                                  const std::int32_t*, std::int32_t*, index_t);
template bool reverse_cuthill_mckee<std::int64_t>(index_t, const std::int64_t*,
                                                  const std::int64_t*, std::int64_t*, index_t);
template double near_fraction<std::int32_t>(index_t, const std::int32_t*, const std::int32_t*,
                                            const std::int32_t*, index_t);
template double near_fraction<std::int64_t>(index_t, const std::int64_t*, const std::int64_t*,
                                            const std::int64_t*, index_t);

}  // namespace deepret::diffusion
