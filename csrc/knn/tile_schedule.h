// The order in which the tiled all-vs-all kNN search (knn_cpu.cpp) visits
// its tiles, and the scheduler that hands them to threads. A tile (I, J) is
// the score block of row block I against row block J; running it updates the
// heaps of both blocks, so two tiles may run at once only when they share no
// block. Nothing here knows about scores or heaps: only block indices.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <utility>
#include <vector>

#include "common/array_view.h"

namespace deepret::knn {

// Rounds of tiles; the tiles of one round share no block.
using TileRounds = std::vector<std::vector<std::pair<index_t, index_t>>>;

// Rounds of disjoint block pairs (the circle method of round-robin
// tournaments): first every diagonal tile (I, I), then each pair I < J once.
inline TileRounds tile_rounds(index_t blocks) {
  TileRounds rounds(1);
  for (index_t b = 0; b < blocks; ++b) rounds[0].emplace_back(b, b);
  const index_t slots = blocks + blocks % 2;  // an odd count gets a bye
  std::vector<index_t> order(slots);
  for (index_t i = 0; i < slots; ++i) order[i] = i;
  for (index_t round = 0; round + 1 < slots; ++round) {
    auto& pairs = rounds.emplace_back();
    for (index_t i = 0; i < slots / 2; ++i) {
      const index_t a = order[i], b = order[slots - 1 - i];
      if (a < blocks && b < blocks) pairs.emplace_back(std::min(a, b), std::max(a, b));
    }
    std::rotate(order.begin() + 1, order.end() - 1, order.end());
  }
  return rounds;
}

// Hands out the all-vs-all's tiles without barriers: a thread takes the
// first tile, in round order, whose two blocks no running tile holds (a
// tile's heaps are its blocks' rows), so a thread that loses its core for a
// while holds up no one. Round order keeps the pairs that follow one another
// disjoint: the scan for a free tile is short. The heaps' contents do not
// depend on the order in which tiles run (each keeps the best k under a total
// order), so neither does the result.
class TileScheduler {
 public:
  TileScheduler(const TileRounds& rounds, index_t blocks)
      : busy_(static_cast<std::size_t>(blocks), 0) {
    for (const auto& round : rounds) pairs_.insert(pairs_.end(), round.begin(), round.end());
    taken_.assign(pairs_.size(), 0);
  }

  index_t size() const { return index_t(pairs_.size()); }

  // Claims a tile (its blocks become busy) and returns its pair; false when
  // every tile is taken or stop() was called. Waits while the tiles left all
  // touch a busy block.
  bool next(std::pair<index_t, index_t>* pair, index_t* slot) {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      while (first_ < pairs_.size() && taken_[first_]) ++first_;
      if (stopped_ || first_ == pairs_.size()) return false;
      for (std::size_t t = first_; t < pairs_.size(); ++t) {
        const auto [bi, bj] = pairs_[t];
        if (taken_[t] || busy_[bi] || busy_[bj]) continue;
        taken_[t] = 1, busy_[bi] = 1, busy_[bj] = 1;
        *pair = pairs_[t], *slot = index_t(t);
        return true;
      }
      freed_.wait(lock);
    }
  }

  // The tile of `slot` is done: its blocks are free again; returns the count
  // of tiles done so far.
  index_t finish(index_t slot) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto [bi, bj] = pairs_[slot];
    busy_[bi] = 0, busy_[bj] = 0;
    freed_.notify_all();
    return ++done_;
  }

  void stop() {
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
    freed_.notify_all();
  }

 private:
  std::vector<std::pair<index_t, index_t>> pairs_;  // every tile, in round order
  std::vector<char> taken_;                         // [pairs]
  std::vector<char> busy_;                          // [blocks]
  std::size_t first_ = 0;                           // tiles before it are all taken
  index_t done_ = 0;
  bool stopped_ = false;
  std::mutex mutex_;
  std::condition_variable freed_;
};

// Rounds over a rectangle of the all-vs-all, a's blocks 0 .. pa - 1 against
// b's blocks pa .. pa + pb - 1: each round pairs every block of the smaller
// side with a different block of the other, so that pa * pb tiles fill
// max(pa, pb) rounds.
inline TileRounds rectangle_rounds(index_t pa, index_t pb) {
  TileRounds rounds;
  for (index_t r = 0; r < std::max(pa, pb); ++r) {
    auto& pairs = rounds.emplace_back();
    if (pa <= pb) {
      for (index_t i = 0; i < pa; ++i) pairs.emplace_back(i, pa + (i + r) % pb);
    } else {
      for (index_t j = 0; j < pb; ++j) pairs.emplace_back((j + r) % pa, pa + j);
    }
  }
  return rounds;
}

}  // namespace deepret::knn
