/**
 * `saga model create`: a Llama-architecture GGUF with random weights and a small SentencePiece-style
 * vocabulary, for tests, CI and demos of `saga engine` on machines that cannot download a real model.
 * Its output is noise; its costs are real: llama.cpp prefills and decodes it like any llama, so cache
 * hits, restores and recomputation cost what they would cost a real model of that shape.
 *
 * Never use these files for real output. Point `saga engine --model` at your own GGUF for that.
 */
import { badArgument } from '../errors';
import { Random } from '../util/random';
import { GgufWriter, float16Bits } from './gguf_writer';

export interface RandomModelPreset {
  readonly description: string;
  readonly layers: number;
  readonly embedding: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly feedForward: number;
  readonly contextLength: number;
  readonly dtype: 'f32' | 'f16';
}

/**
 * `tiny` loads in milliseconds (unit tests); `small` (~52 MB) has prefill/decode cost ratios like a
 * real model's on one CPU thread, for benches (measured here: prefill 1,000-1,500 tokens/s, decode ~120
 * tokens/s for one sequence at a 1,000-token context).
 */
export const RANDOM_MODEL_PRESETS: Readonly<Record<'tiny' | 'small', RandomModelPreset>> = {
  tiny: { description: '2 layers, 64 wide, F32 (~0.5 MB): unit tests', layers: 2, embedding: 64, heads: 4, kvHeads: 2, feedForward: 128, contextLength: 2048, dtype: 'f32' },
  small: { description: '8 layers, 512 wide, F16 (~52 MB): benchmarks', layers: 8, embedding: 512, heads: 8, kvHeads: 4, feedForward: 1536, contextLength: 4096, dtype: 'f16' },
};

export type RandomModelPresetName = keyof typeof RANDOM_MODEL_PRESETS;

/** RMSNorm epsilon and RoPE base of Llama 2/3 (Meta's configs). */
const RMS_EPSILON = 1e-5;
const ROPE_FREQ_BASE = 10000;

/** SentencePiece token types (llama.cpp `llama_token_type`). */
const TOKEN_NORMAL = 1;
const TOKEN_UNKNOWN = 2;
const TOKEN_CONTROL = 3;
const TOKEN_BYTE = 6;
/** SentencePiece's word-boundary marker (U+2581), which stands for a space in pieces. */
const SPACE = '\u2581';
/** Letters by English frequency: the vocabulary's merges are built from the commonest first. */
const LETTERS_BY_FREQUENCY = 'etaoinshrdlcumwfgypbvkjxqz';
/** Letter pairs in the vocabulary: with the rest, ~770 tokens. */
const BIGRAM_COUNT = 390;

export interface Vocabulary {
  readonly tokens: string[];
  readonly scores: Float32Array;
  readonly types: Int32Array;
}

/**
 * `<unk>`, `<s>`, `</s>`, the 256 byte-fallback tokens, printable ASCII, the space marker, space+letter
 * and the commonest letter pairs. Scores rank merges: longer, commoner pieces merge first.
 */
export function buildVocabulary(): Vocabulary {
  const tokens: string[] = ['<unk>', '<s>', '</s>'];
  const types: number[] = [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL];
  const scores: number[] = [0, 0, 0];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TOKEN_BYTE);
    scores.push(0);
  }
  const pieces: string[] = [SPACE];
  for (let c = 33; c < 127; c++) pieces.push(String.fromCharCode(c));
  for (const l of LETTERS_BY_FREQUENCY) pieces.push(SPACE + l);
  const pairs: string[] = [];
  for (let rank = 0; rank < 2 * LETTERS_BY_FREQUENCY.length; rank++) {
    for (let i = 0; i <= rank; i++) {
      const j = rank - i;
      if (i < LETTERS_BY_FREQUENCY.length && j < LETTERS_BY_FREQUENCY.length) pairs.push(LETTERS_BY_FREQUENCY[i] + LETTERS_BY_FREQUENCY[j]);
    }
  }
  pieces.push(...pairs.slice(0, BIGRAM_COUNT));
  pieces.forEach((piece, i) => {
    tokens.push(piece);
    types.push(TOKEN_NORMAL);
    // Single characters score lowest; multi-character pieces by rank, commoner higher.
    scores.push([...piece].length === 1 ? -1000 - i : -i);
  });
  return { tokens, scores: Float32Array.from(scores), types: Int32Array.from(types) };
}

/** Uniform weights in [-a, a] with std 1/sqrt(fanIn): activations stay O(1) through the layers. */
function randomMatrix(random: Random, fanIn: number, fanOut: number, dtype: 'f32' | 'f16'): Float32Array | Uint16Array {
  const n = fanIn * fanOut;
  const a = Math.sqrt(3 / fanIn);
  if (dtype === 'f32') {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = random.uniform(-a, a);
    return out;
  }
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = float16Bits(random.uniform(-a, a));
  return out;
}

/** Norm weights are kept F32, as llama.cpp's converters write them. */
function ones(n: number): Float32Array {
  return new Float32Array(n).fill(1);
}

export interface CreateRandomModelOptions {
  readonly preset: RandomModelPresetName;
  readonly seed: number;
  readonly outPath: string;
}

/** Writes the model and returns its size in bytes. Same preset and seed, same bytes. */
export function createRandomModel(options: CreateRandomModelOptions): number {
  const p = RANDOM_MODEL_PRESETS[options.preset];
  if (p === undefined) throw badArgument(`unknown model preset "${String(options.preset)}"; presets: ${Object.keys(RANDOM_MODEL_PRESETS).join(', ')}`);
  if (!Number.isSafeInteger(options.seed)) throw badArgument(`seed must be an integer, got ${String(options.seed)}`);
  const random = new Random(options.seed);
  const vocab = buildVocabulary();
  const headDim = p.embedding / p.heads;
  const kvWidth = headDim * p.kvHeads;

  const w = new GgufWriter()
    .string('general.architecture', 'llama')
    .string('general.name', `saga-random-${options.preset} (random weights: for tests and demos only)`)
    .uint32('general.file_type', p.dtype === 'f32' ? 0 : 1)
    .uint32('llama.context_length', p.contextLength)
    .uint32('llama.embedding_length', p.embedding)
    .uint32('llama.block_count', p.layers)
    .uint32('llama.feed_forward_length', p.feedForward)
    .uint32('llama.attention.head_count', p.heads)
    .uint32('llama.attention.head_count_kv', p.kvHeads)
    .float32('llama.attention.layer_norm_rms_epsilon', RMS_EPSILON)
    .float32('llama.rope.freq_base', ROPE_FREQ_BASE)
    .uint32('llama.rope.dimension_count', headDim)
    .uint32('llama.vocab_size', vocab.tokens.length)
    .string('tokenizer.ggml.model', 'llama')
    .strings('tokenizer.ggml.tokens', vocab.tokens)
    .float32s('tokenizer.ggml.scores', vocab.scores)
    .int32s('tokenizer.ggml.token_type', vocab.types)
    .uint32('tokenizer.ggml.unknown_token_id', 0)
    .uint32('tokenizer.ggml.bos_token_id', 1)
    .uint32('tokenizer.ggml.eos_token_id', 2)
    .bool('tokenizer.ggml.add_bos_token', true)
    .bool('tokenizer.ggml.add_eos_token', false);

  const n = vocab.tokens.length;
  w.tensor('token_embd.weight', [p.embedding, n], randomMatrix(random, p.embedding, n, p.dtype));
  for (let layer = 0; layer < p.layers; layer++) {
    const b = `blk.${layer}`;
    w.tensor(`${b}.attn_norm.weight`, [p.embedding], ones(p.embedding));
    w.tensor(`${b}.attn_q.weight`, [p.embedding, p.embedding], randomMatrix(random, p.embedding, p.embedding, p.dtype));
    w.tensor(`${b}.attn_k.weight`, [p.embedding, kvWidth], randomMatrix(random, p.embedding, kvWidth, p.dtype));
    w.tensor(`${b}.attn_v.weight`, [p.embedding, kvWidth], randomMatrix(random, p.embedding, kvWidth, p.dtype));
    w.tensor(`${b}.attn_output.weight`, [p.embedding, p.embedding], randomMatrix(random, p.embedding, p.embedding, p.dtype));
    w.tensor(`${b}.ffn_norm.weight`, [p.embedding], ones(p.embedding));
    w.tensor(`${b}.ffn_gate.weight`, [p.embedding, p.feedForward], randomMatrix(random, p.embedding, p.feedForward, p.dtype));
    w.tensor(`${b}.ffn_up.weight`, [p.embedding, p.feedForward], randomMatrix(random, p.embedding, p.feedForward, p.dtype));
    w.tensor(`${b}.ffn_down.weight`, [p.feedForward, p.embedding], randomMatrix(random, p.feedForward, p.embedding, p.dtype));
  }
  w.tensor('output_norm.weight', [p.embedding], ones(p.embedding));
  w.tensor('output.weight', [p.embedding, n], randomMatrix(random, p.embedding, n, p.dtype));
  return w.writeFile(options.outPath);
}
