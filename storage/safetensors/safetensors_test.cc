// safetensors: round trips in F32 and BF16, and every kind of malformed file rejected with a
// message naming the problem.
#include "storage/safetensors/safetensors.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string Dir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d ? d : "/tmp";
}

// A file from a header text and `data_bytes` zero bytes.
std::string Build(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\0');
}

absl::Status Parse(const std::string& bytes) {
  return ParseSafetensorsHeader(bytes, static_cast<int64_t>(bytes.size()), "model.safetensors")
      .status();
}

TEST(SafetensorsTest, F32RoundTripIsExactAndKeepsMetadata) {
  const std::string path = Dir() + "/rt.safetensors";
  std::vector<float> a = {1.5f, -2.25f, 3.0f, 1e-30f, -0.0f, 7.0f};
  std::vector<float> b = {42.0f};
  std::vector<SafetensorsTensorView> views = {{"layer.weight", {2, 3}, a.data()},
                                              {"scalar", {}, b.data()}};
  ASSERT_TRUE(WriteSafetensors(path, views, {{"format", "pt"}}).ok());
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->header().metadata.at("format"), "pt");
  EXPECT_EQ(file->header().data_offset % 8, 0);
  const SafetensorsEntry* entry = file->header().Find("layer.weight");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->shape, (std::vector<int64_t>{2, 3}));
  std::vector<float> back(6);
  ASSERT_TRUE(file->ReadF32(*entry, back.data()).ok());
  EXPECT_EQ(0, std::memcmp(back.data(), a.data(), sizeof(float) * 6));
  const SafetensorsEntry* scalar = file->header().Find("scalar");
  ASSERT_NE(scalar, nullptr);
  EXPECT_EQ(scalar->numel(), 1);
}

TEST(SafetensorsTest, Bf16RoundsToNearestEven) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(Bf16ToFloat(0x3f80), 1.0f);
  // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: rounds to even (1.0).
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(1.0f + 1.0f / 256)), 1.0f);
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(NAN))));
  EXPECT_EQ(F16ToFloat(0x3c00), 1.0f);
  EXPECT_EQ(F16ToFloat(0xc000), -2.0f);
  EXPECT_EQ(F16ToFloat(0x0001), std::ldexp(1.0f, -24));  // Smallest subnormal.

  const std::string path = Dir() + "/bf16.safetensors";
  std::vector<float> a = {1.0f, 0.1f, -3.14159f, 65504.0f};
  std::vector<SafetensorsTensorView> views = {{"w", {4}, a.data()}};
  ASSERT_TRUE(WriteSafetensors(path, views, {}, SafetensorsDType::kBF16).ok());
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->header().Find("w")->dtype, SafetensorsDType::kBF16);
  std::vector<float> back(4);
  ASSERT_TRUE(file->ReadF32(*file->header().Find("w"), back.data()).ok());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(back[i], Bf16ToFloat(FloatToBf16(a[i])));
}

TEST(SafetensorsTest, MalformedHeadersAreRejectedWithTheReason) {
  struct Case {
    std::string bytes;
    std::string reason;
  };
  const std::string ok_entry = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  std::vector<Case> cases = {
      {"abc", "too short for the 8-byte header length"},
      {std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}", "exceeds the limit"},
      {std::string("\x40\0\0\0\0\0\0\0", 8) + "{}", "runs past the end"},
      {Build("{not json", 0), "not valid JSON"},
      {Build("[1,2]", 0), "must be a JSON object"},
      {Build(R"({"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})", 1),
       "unknown dtype \"F8\""},
      {Build(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "non-negative"},
      {Build(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", 8), "out of range"},
      {Build(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "bytes for shape"},
      {Build(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8), "out of range"},
      {Build(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
             12),
       "overlaps"},
      {Build(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12), "hole"},
      {Build("{" + ok_entry + "}", 12), "trailing bytes"},
      {Build(R"({"a":{"dtype":"F32","shape":[2]}})", 8), "data_offsets"},
      {Build(R"({"__metadata__":{"k":1},)" + ok_entry + "}", 8), "__metadata__[\"k\"]"},
      {Build(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
       "too large"},
  };
  for (const Case& c : cases) {
    absl::Status status = Parse(c.bytes);
    EXPECT_FALSE(status.ok()) << c.reason;
    EXPECT_THAT(status.message(), HasSubstr(c.reason)) << status;
    EXPECT_THAT(status.message(), HasSubstr("model.safetensors")) << status;
  }
  EXPECT_TRUE(Parse(Build("{" + ok_entry + "}", 8)).ok());
}

TEST(SafetensorsTest, TruncatedFileIsRejectedOnOpen) {
  const std::string path = Dir() + "/trunc.safetensors";
  std::vector<float> a(100, 1.0f);
  std::vector<SafetensorsTensorView> views = {{"w", {100}, a.data()}};
  ASSERT_TRUE(WriteSafetensors(path, views, {}).ok());
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  std::string text = bytes.str();
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text.substr(0, text.size() - 10);
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  EXPECT_FALSE(file.ok());
  EXPECT_THAT(file.status().message(), HasSubstr("out of range"));
}

TEST(SafetensorsTest, FailedWriteLeavesThePreviousFile) {
  const std::string path = Dir() + "/keep.safetensors";
  std::vector<float> a = {1.0f};
  std::vector<SafetensorsTensorView> views = {{"w", {1}, a.data()}};
  ASSERT_TRUE(WriteSafetensors(path, views, {}).ok());
  // Reading past the end of the source buffer is impossible to fake safely; an unsupported
  // dtype is rejected before anything is written.
  EXPECT_FALSE(WriteSafetensors(path, views, {}, SafetensorsDType::kI32).ok());
  EXPECT_FALSE(WriteSafetensors(Dir() + "/no/such/dir/x.safetensors", views, {}).ok());
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  float back = 0;
  ASSERT_TRUE(file->ReadF32(*file->header().Find("w"), &back).ok());
  EXPECT_EQ(back, 1.0f);
}

}  // namespace
}  // namespace strata
