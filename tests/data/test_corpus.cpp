// ByteCorpus (plain and gzip files, splits, errors naming the file) and the stream
// batchers: contiguity across segments and batches, cursors, random crops, eval coverage.
#include <boost/test/unit_test.hpp>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <unistd.h>

#include "data/byte_corpus.h"
#include "data/streams.h"
#include "tests/support/error_of.h"

using namespace mnemo;
using namespace mnemo::data;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> sample_bytes(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t((i * 7919 + i / 13) % 256);
  return v;
}

fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / ("mnemo_test_data_" + std::to_string(::getpid()) + "_" + name);
}

fs::path write_plain(const std::string& name, const std::vector<uint8_t>& v) {
  const fs::path p = temp_path(name);
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size()));
  return p;
}

fs::path write_gzip(const std::string& name, const std::vector<uint8_t>& v) {
  const fs::path p = temp_path(name);
  gzFile g = gzopen(p.c_str(), "wb");
  BOOST_REQUIRE(g);
  BOOST_REQUIRE(gzwrite(g, v.data(), unsigned(v.size())) == int(v.size()));
  gzclose(g);
  return p;
}

using mnemo::test::error_of;

// Row b of a (B, T) i32 tensor.
std::vector<int32_t> row(const Tensor& t, int64_t b) {
  const int32_t* p = t.data<int32_t>() + b * t.dim(1);
  return std::vector<int32_t>(p, p + t.dim(1));
}

// The S*T inputs of stream b, followed by its last target.
std::vector<int32_t> flat_inputs(const Batch& batch, int64_t b) {
  std::vector<int32_t> out;
  for (const Tensor& x : batch.inputs) {
    const auto r = row(x, b);
    out.insert(out.end(), r.begin(), r.end());
  }
  return out;
}

bool same_batch(const Batch& a, const Batch& b) {
  if (a.segments() != b.segments() || a.reset_memory != b.reset_memory) return false;
  for (int64_t s = 0; s < a.segments(); ++s)
    if (a.inputs[size_t(s)].to_vector() != b.inputs[size_t(s)].to_vector() ||
        a.targets[size_t(s)].to_vector() != b.targets[size_t(s)].to_vector())
      return false;
  return true;
}

ByteSpan memory_split(size_t n, Split s = Split::train) {
  const SplitSizes sizes = standard_split(int64_t(n), 0.1);
  return ByteCorpus(sample_bytes(n), sizes).split(s);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(corpus)

BOOST_AUTO_TEST_CASE(fraction_split_sizes) {
  const auto v = sample_bytes(1000);
  const fs::path p = write_plain("split.txt", v);
  const ByteCorpus c = ByteCorpus::load(p.string(), 0.1);
  BOOST_TEST(c.size() == 1000);
  BOOST_TEST(c.sizes().train == 900);
  BOOST_TEST(c.sizes().valid == 100);
  BOOST_TEST(c.sizes().test == 0);
  const ByteSpan valid = c.split(Split::valid);
  BOOST_TEST(valid.begin == 900);
  BOOST_TEST(valid[0] == v[900]);
  BOOST_TEST(error_of([&] { c.split(Split::test); }).find(p.string()) != std::string::npos);
  fs::remove(p);
}

BOOST_AUTO_TEST_CASE(enwik8_split_sizes) {
  const SplitSizes s = standard_split(kEnwik8Bytes, 0.3);  // the fraction does not apply to enwik8
  BOOST_TEST(s.train == 90'000'000);
  BOOST_TEST(s.valid == 5'000'000);
  BOOST_TEST(s.test == 5'000'000);
  const ByteCorpus c(sample_bytes(30), SplitSizes{20, 5, 5});
  BOOST_TEST(c.split(Split::test).begin == 25);
  BOOST_TEST(c.split(Split::test).size == 5);
  BOOST_CHECK_THROW(ByteCorpus(sample_bytes(30), SplitSizes{20, 5, 4}), Error);
}

BOOST_AUTO_TEST_CASE(gzip_and_raw_give_the_same_bytes) {
  const auto v = sample_bytes(300'000);
  const fs::path raw = write_plain("raw.txt", v), gz = write_gzip("packed.bin", v);  // no .gz suffix: magic decides
  BOOST_TEST(!is_gzip_file(raw.string()));
  BOOST_TEST(is_gzip_file(gz.string()));
  const ByteCorpus a = ByteCorpus::load(raw.string()), b = ByteCorpus::load(gz.string());
  BOOST_TEST(a.bytes() == v);
  BOOST_TEST(b.bytes() == v);
  BOOST_TEST(b.sizes().train == a.sizes().train);
  fs::remove(raw);
  fs::remove(gz);
}

BOOST_AUTO_TEST_CASE(missing_file_error_names_it) {
  const std::string p = temp_path("does_not_exist.txt").string();
  const std::string e = error_of([&] { ByteCorpus::load(p); });
  BOOST_TEST(e.find("[data] cannot open '" + p + "'") != std::string::npos, e);
  BOOST_TEST(e.find("No such file") != std::string::npos, e);
}

BOOST_AUTO_TEST_CASE(corrupt_gzip_error_names_it) {
  std::vector<uint8_t> bad = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  for (int i = 0; i < 64; ++i) bad.push_back(uint8_t(i * 37 + 11));
  const fs::path p = write_plain("corrupt.gz", bad);
  const std::string e = error_of([&] { ByteCorpus::load(p.string()); });
  BOOST_TEST(e.find("[data] '" + p.string() + "' is not a valid gzip file") != std::string::npos, e);
  // A truncated archive is refused too, not silently shortened.
  const fs::path good = write_gzip("whole.gz", sample_bytes(50'000));
  std::ifstream in(good, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  bytes.resize(bytes.size() / 2);
  const fs::path cut = temp_path("cut.gz");
  std::ofstream(cut, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  const std::string e2 = error_of([&] { ByteCorpus::load(cut.string()); });
  BOOST_TEST(e2.find("'" + cut.string() + "' is not a valid gzip file") != std::string::npos, e2);
  fs::remove(p);
  fs::remove(good);
  fs::remove(cut);
}

std::vector<char> file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(in)), {});
}

BOOST_AUTO_TEST_CASE(gzip_members_are_concatenated_and_trailing_bytes_refused) {
  // `cat a.gz b.gz` is a valid gzip file holding a then b (RFC 1952, gzip -d agrees).
  const std::vector<uint8_t> a = sample_bytes(3000), b = sample_bytes(70'000);
  const fs::path ga = write_gzip("a.gz", a), gb = write_gzip("b.gz", b);
  std::vector<char> both = file_bytes(ga);
  const std::vector<char> second = file_bytes(gb);
  both.insert(both.end(), second.begin(), second.end());
  const fs::path cat = temp_path("cat.gz");
  std::ofstream(cat, std::ios::binary).write(both.data(), std::streamsize(both.size()));
  std::vector<uint8_t> expected = a;
  expected.insert(expected.end(), b.begin(), b.end());
  BOOST_TEST(read_file_bytes(cat.string()) == expected);
  // Anything else after the last member is refused, with where it starts.
  for (const std::string tail : {std::string("x"), std::string("appended text"), std::string(8, '\0')}) {
    std::vector<char> bytes = both;
    bytes.insert(bytes.end(), tail.begin(), tail.end());
    const fs::path p = temp_path("trailing.gz");
    std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    const std::string e = error_of([&] { read_file_bytes(p.string()); });
    BOOST_TEST(e.find("'" + p.string() + "' has " + std::to_string(tail.size()) + " bytes after the last gzip member") !=
                   std::string::npos, e);
    BOOST_TEST(e.find("member 2 ends at byte " + std::to_string(both.size())) != std::string::npos, e);
    fs::remove(p);
  }
  fs::remove(ga);
  fs::remove(gb);
  fs::remove(cat);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(streams)

BOOST_AUTO_TEST_CASE(targets_are_inputs_shifted_by_one) {
  const ByteSpan t = memory_split(5000);
  ContiguousStreams st(t, {3, 4, 8});
  const Batch b = st.next();
  BOOST_TEST(b.segments() == 4);
  BOOST_TEST(b.inputs[0].shape() == Shape({3, 8}));
  BOOST_TEST(b.inputs[0].dtype() == DType::i32);
  BOOST_TEST(b.loss_mask.empty());
  BOOST_TEST(b.reset_memory);
  for (int64_t s = 0; s < 4; ++s)
    for (int64_t r = 0; r < 3; ++r) {
      const auto x = row(b.inputs[size_t(s)], r), y = row(b.targets[size_t(s)], r);
      for (int64_t i = 0; i + 1 < 8; ++i) BOOST_TEST(y[size_t(i)] == x[size_t(i + 1)]);
    }
}

BOOST_AUTO_TEST_CASE(contiguous_across_segments_and_batches) {
  const ByteSpan t = memory_split(5000);
  const int64_t B = 3, S = 4, T = 8;
  ContiguousStreams st(t, {B, S, T});
  const int64_t L = st.stream_length();
  BOOST_TEST(L == t.size / B);
  std::vector<Batch> batches;
  for (int i = 0; i < 5; ++i) batches.push_back(st.next());
  for (int64_t b = 0; b < B; ++b)
    for (int n = 0; n < 5; ++n) {
      // The stream's bytes, in order: batch n of stream b starts at b*L + n*S*T.
      const auto xs = flat_inputs(batches[size_t(n)], b);
      for (int64_t i = 0; i < S * T; ++i) BOOST_TEST(xs[size_t(i)] == int32_t(t[b * L + n * S * T + i]));
      // Segment s+1's first input follows segment s's last input; its last target is it.
      for (int64_t s = 0; s + 1 < S; ++s)
        BOOST_TEST(row(batches[size_t(n)].targets[size_t(s)], b).back() ==
                   row(batches[size_t(n)].inputs[size_t(s + 1)], b).front());
      if (n + 1 < 5) {  // batch n+1 continues batch n
        BOOST_TEST(row(batches[size_t(n)].targets[size_t(S - 1)], b).back() ==
                   row(batches[size_t(n + 1)].inputs[0], b).front());
        BOOST_TEST(!batches[size_t(n + 1)].reset_memory);
      }
    }
}

BOOST_AUTO_TEST_CASE(wraps_with_reset_flag) {
  const ByteSpan t = memory_split(1000);  // 900 train bytes: 2 streams of 450
  ContiguousStreams st(t, {2, 2, 50});
  BOOST_TEST(st.batches_per_epoch() == 4);
  const Batch first = st.next();
  for (int i = 1; i < 4; ++i) BOOST_TEST(!st.next().reset_memory);
  const Batch again = st.next();
  BOOST_TEST(again.reset_memory);
  BOOST_TEST(same_batch(first, again));
}

BOOST_AUTO_TEST_CASE(cursor_restores_next_batch) {
  const ByteSpan t = memory_split(5000);
  ContiguousStreams a(t, {4, 2, 16});
  a.next();
  a.next();
  const auto cur = a.cursor();
  BOOST_TEST(cur.size() == 4u);
  BOOST_TEST(cur[1] == a.stream_length() + 64);
  const Batch expect = a.next();
  ContiguousStreams b(t, {4, 2, 16});
  b.set_cursor(cur);
  BOOST_TEST(same_batch(b.next(), expect));
  BOOST_CHECK_THROW(b.set_cursor({1, 2, 3}), Error);
}

BOOST_AUTO_TEST_CASE(too_short_split_is_refused) {
  const std::string e = error_of([&] { ContiguousStreams(memory_split(100), {4, 2, 16}); });
  BOOST_TEST(e.find("too few") != std::string::npos, e);
}

BOOST_AUTO_TEST_CASE(random_crops_deterministic_and_in_bounds) {
  const ByteSpan t = memory_split(3000);
  const int64_t B = 5, S = 3, T = 10;
  RandomCrops a(t, {B, S, T}, 42), b(t, {B, S, T}, 42), c(t, {B, S, T}, 43);
  const Batch a0 = a.next();
  BOOST_TEST(a0.reset_memory);
  BOOST_TEST(same_batch(a0, b.next()));
  BOOST_TEST(!same_batch(a.next(), c.next()));
  // Resume from the Rng state.
  const uint64_t state = a.rng_state();
  const Batch a2 = a.next();
  RandomCrops d(t, {B, S, T}, 7);
  d.set_rng_state(state);
  BOOST_TEST(same_batch(d.next(), a2));
  // Each row is a contiguous window of the split.
  for (int i = 0; i < 20; ++i) {
    const Batch x = a.next();
    for (int64_t r = 0; r < B; ++r) {
      const auto xs = flat_inputs(x, r);
      int64_t start = -1;
      for (int64_t p = 0; p + S * T < t.size && start < 0; ++p) {
        bool ok = true;
        for (int64_t k = 0; k < S * T && ok; ++k) ok = int32_t(t[p + k]) == xs[size_t(k)];
        ok = ok && int32_t(t[p + S * T]) == row(x.targets[size_t(S - 1)], r).back();
        if (ok) start = p;
      }
      BOOST_TEST(start >= 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(eval_streams_cover_split_once) {
  const ByteSpan t = memory_split(2000, Split::valid);  // 200 bytes, 199 targets
  const int64_t B = 3, S = 2, T = 7;
  EvalStreams ev(t, {B, S, T});
  BOOST_TEST(ev.num_targets() == 199);
  std::vector<int> seen(size_t(t.size), 0);
  int64_t batches = 0, counted = 0;
  const int64_t L = (t.size - 1 + B - 1) / B;
  while (!ev.done()) {
    const Batch b = ev.next();
    BOOST_TEST(b.reset_memory == (batches == 0));
    for (int64_t r = 0; r < B; ++r)
      for (int64_t s = 0; s < S; ++s) {
        const auto y = row(b.targets[size_t(s)], r);
        for (int64_t i = 0; i < T; ++i) {
          const bool on = b.loss_mask.empty() || b.loss_mask[size_t(s)].data<uint8_t>()[r * T + i];
          if (!on) continue;
          const int64_t pos = r * L + batches * S * T + s * T + i + 1;  // target position
          BOOST_REQUIRE(pos < t.size);
          BOOST_TEST(y[size_t(i)] == int32_t(t[pos]));
          ++seen[size_t(pos)];
          ++counted;
        }
      }
    ++batches;
  }
  BOOST_TEST(batches == ev.num_batches());
  BOOST_TEST(counted == 199);
  for (int64_t p = 1; p < t.size; ++p) BOOST_TEST(seen[size_t(p)] == 1);
  BOOST_CHECK_THROW(ev.next(), Error);
  ev.restart();
  BOOST_TEST(ev.next().reset_memory);
}

BOOST_AUTO_TEST_SUITE_END()
