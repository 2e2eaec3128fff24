// The export writer: files land whole under their names, chunks out of order or names with a
// directory are refused, and an interrupted file leaves no partial file behind.
#include "services/cli/export_writer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

v1::ExportChunk Chunk(const std::string& file, int64_t offset, const std::string& data, bool done) {
  v1::ExportChunk c;
  c.set_file(file);
  c.set_offset(offset);
  c.set_data(data);
  c.set_file_done(done);
  return c;
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ExportWriterTest, WritesWholeFilesAndRefusesWhatDoesNotFit) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/export";
  {
    ExportWriter writer(dir);
    ASSERT_TRUE(writer.Write(Chunk("config.json", 0, "{}", true)).ok());
    ASSERT_TRUE(writer.Write(Chunk("model.safetensors", 0, "abc", false)).ok());
    EXPECT_TRUE(Read(dir + "/model.safetensors").empty());  // Not there until complete.
    ASSERT_TRUE(writer.Write(Chunk("model.safetensors", 3, "def", true)).ok());
    v1::ExportChunk end;
    end.set_finished(true);
    ASSERT_TRUE(writer.Write(end).ok());
    EXPECT_EQ(writer.bytes(), 8);
    EXPECT_THAT(writer.files(), ::testing::ElementsAre("config.json", "model.safetensors"));
  }
  EXPECT_EQ(Read(dir + "/model.safetensors"), "abcdef");
  EXPECT_EQ(Read(dir + "/config.json"), "{}");
  {
    ExportWriter writer(dir);
    EXPECT_THAT(writer.Write(Chunk("config.json", 0, "{\"x\": 1}", true)).message(),
                HasSubstr("already exists"));
    EXPECT_EQ(Read(dir + "/config.json"), "{}");
    EXPECT_THAT(writer.Write(Chunk("../escape", 0, "x", true)).message(),
                HasSubstr("not a plain name"));
    ASSERT_TRUE(writer.Write(Chunk("partial.bin", 0, "abc", false)).ok());
    EXPECT_THAT(writer.Write(Chunk("partial.bin", 7, "x", false)).message(),
                HasSubstr("expected partial.bin at offset 3"));
  }
  struct stat st;
  EXPECT_NE(stat((dir + "/partial.bin.part").c_str(), &st), 0);
  EXPECT_NE(stat((dir + "/partial.bin").c_str(), &st), 0);
  EXPECT_NE(stat((std::string(std::getenv("TEST_TMPDIR")) + "/escape").c_str(), &st), 0);
}

}  // namespace
}  // namespace strata
