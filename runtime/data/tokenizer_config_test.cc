// tokenizer_config.json: special tokens in both spellings, OPT's add_bos_token, add_eos_token,
// added_tokens_decoder, and errors that name the field.
#include "runtime/data/tokenizer_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/data/tokenizer_json.h"

namespace strata {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// OPT-like: fairseq's specials at the front of a byte-level vocabulary.
constexpr char kTokenizerJson[] = R"({
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
  "model": {"type": "BPE",
    "vocab": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "a": 4, "b": 5, "ab": 6, "Ġ": 7,
              "Ġab": 8, "<": 9, "s": 10, ">": 11},
    "merges": ["a b", "Ġ ab"]}})";

absl::StatusOr<std::unique_ptr<BpeTokenizer>> WithConfig(const std::string& config_json) {
  absl::StatusOr<BpeModel> model = ParseTokenizerJson(kTokenizerJson, "tokenizer.json");
  if (!model.ok()) return model.status();
  absl::StatusOr<TokenizerConfig> config =
      ParseTokenizerConfig(config_json, "tokenizer_config.json");
  if (!config.ok()) return config.status();
  if (absl::Status s = ApplyTokenizerConfig(*config, &*model); !s.ok()) return s;
  return BpeTokenizer::Create(*std::move(model));
}

TEST(TokenizerConfigTest, OptPrependsItsBosToEveryTextAndNeverSplitsSpecialTokens) {
  auto tok = WithConfig(R"({
    "bos_token": {"content": "</s>", "lstrip": false, "__type": "AddedToken"},
    "eos_token": {"content": "</s>", "__type": "AddedToken"},
    "unk_token": "</s>", "pad_token": {"content": "<pad>"},
    "add_bos_token": true, "add_prefix_space": false, "tokenizer_class": "GPT2Tokenizer"})");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->bos_id(), 2);
  EXPECT_EQ((*tok)->eos_id(), 2);
  EXPECT_THAT(*(*tok)->Encode("ab ab"), ElementsAre(2, 6, 8));
  EXPECT_THAT(*(*tok)->Encode(""), ElementsAre(2));
  EXPECT_THAT(*(*tok)->Encode("ab ab", {.add_special_tokens = false}), ElementsAre(6, 8));
  // </s> and <pad> are special (split out); <s> is not one of OPT's special tokens.
  EXPECT_THAT(*(*tok)->Encode("ab</s><pad><s>"), ElementsAre(2, 6, 2, 1, 9, 10, 11));
  EXPECT_EQ(*(*tok)->Decode({2, 6, 2, 1}), "</s>ab</s><pad>");
}

TEST(TokenizerConfigTest, AddEosAndAddedTokensDecoder) {
  auto tok = WithConfig(R"({
    "bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true, "add_eos_token": true,
    "added_tokens_decoder": {
      "3": {"content": "<unk>", "special": true},
      "12": {"content": "<|im_start|>", "special": true, "lstrip": false, "rstrip": true}}})");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_THAT(*(*tok)->Encode("ab"), ElementsAre(0, 6, 2));
  // A new added token, absorbing the whitespace on its right.
  EXPECT_THAT(*(*tok)->Encode("<unk><|im_start|>  ab"), ElementsAre(0, 3, 12, 6, 2));
  EXPECT_EQ((*tok)->vocab_size(), 13);
  // add_bos_token false: no BOS even though bos_token is set.
  auto no_bos = WithConfig(R"({"bos_token": "<s>", "add_bos_token": false})");
  ASSERT_TRUE(no_bos.ok());
  EXPECT_THAT(*(*no_bos)->Encode("ab"), ElementsAre(6));
  EXPECT_EQ((*no_bos)->bos_id(), 0);
}

TEST(TokenizerConfigTest, SpecialTokensMapOverridesAndChatTemplateIsKept) {
  auto config = ParseTokenizerConfig(
      R"({"bos_token": "<s>", "eos_token": "</s>",
          "chat_template": [{"name": "tool_use", "template": "t"},
                            {"name": "default", "template": "{{ bos_token }}"}]})",
      "tokenizer_config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->chat_template, "{{ bos_token }}");
  auto map = ParseTokenizerConfig(R"({"eos_token": {"content": "<pad>"}})", "special.json");
  ASSERT_TRUE(map.ok());
  OverrideSpecialTokens(*map, &*config);
  EXPECT_EQ(config->bos_token, "<s>");
  EXPECT_EQ(config->eos_token, "<pad>");
}

TEST(TokenizerConfigTest, ErrorsNameTheFileAndField) {
  auto message = [](const std::string& json) {
    return std::string(WithConfig(json).status().message());
  };
  EXPECT_THAT(message("{"), HasSubstr("tokenizer_config.json"));
  EXPECT_THAT(message(R"({"bos_token": 7})"), HasSubstr("bos_token must be"));
  EXPECT_THAT(message(R"({"eos_token": "<|nothing|>"})"),
              HasSubstr("eos_token is neither in the vocabulary"));
  EXPECT_THAT(message(R"({"add_bos_token": true})"),
              HasSubstr("add_bos_token is true but bos_token is not set"));
  EXPECT_THAT(message(R"({"add_eos_token": "yes"})"), HasSubstr("add_eos_token must be"));
  EXPECT_THAT(message(R"({"added_tokens_decoder": {"x": {"content": "a"}}})"),
              HasSubstr("added_tokens_decoder[\"x\"]"));
  EXPECT_THAT(message(R"({"added_tokens_decoder": {"40": {"content": "ab"}}})"),
              HasSubstr("added_tokens_decoder[\"40\"] is in the vocabulary as id 6"));
  EXPECT_THAT(message(R"({"split_special_tokens": true})"), HasSubstr("split_special_tokens"));
  EXPECT_THAT(message(R"({"additional_special_tokens": ["<s>", "<|secret stuff|>"]})"),
              HasSubstr("additional_special_tokens[1]"));
}

}  // namespace
}  // namespace strata
