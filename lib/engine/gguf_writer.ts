/**
 * A writer for GGUF version 3, the model file format of llama.cpp (spec: ggml-org/ggml docs/gguf.md):
 * a header, typed metadata key/values, tensor descriptors, then tensor data, each tensor aligned to
 * `general.alignment` bytes (32 by default). Little-endian throughout.
 *
 * SAGA writes only the small random-weight models of `saga model create` (for tests and demos), so the
 * writer covers what those need: scalar, string and array metadata, and F32/F16 tensors.
 */
import * as fs from 'node:fs';
import { badArgument } from '../errors';

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const GGUF_VERSION = 3;
/** llama.cpp's default when `general.alignment` is absent; we write it explicitly too. */
export const GGUF_ALIGNMENT = 32;

/** Metadata value types (gguf.md, `gguf_metadata_value_type`). */
const enum ValueType {
  Uint8 = 0,
  Int32 = 5,
  Float32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  Uint32 = 4,
}

/** Tensor element types we write (ggml `ggml_type`). */
export const enum TensorType {
  F32 = 0,
  F16 = 1,
}

type MetadataValue =
  | { type: ValueType.Uint32 | ValueType.Int32 | ValueType.Float32 | ValueType.Uint8; value: number }
  | { type: ValueType.Bool; value: boolean }
  | { type: ValueType.String; value: string }
  | { type: ValueType.Array; element: ValueType.String; values: readonly string[] }
  | { type: ValueType.Array; element: ValueType.Float32 | ValueType.Int32; values: ArrayLike<number> };

interface TensorEntry {
  readonly name: string;
  /** ggml order: dims[0] is the innermost (contiguous) dimension. */
  readonly dims: readonly number[];
  readonly type: TensorType;
  readonly data: Float32Array | Uint16Array;
}

/** Grows a byte buffer as values are appended (metadata and descriptors are small). */
class ByteSink {
  private buffer = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return;
    const next = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + bytes));
    this.buffer.copy(next, 0, 0, this.length);
    this.buffer = next;
  }
  u32(v: number): void {
    this.reserve(4);
    this.length = this.buffer.writeUInt32LE(v, this.length);
  }
  i32(v: number): void {
    this.reserve(4);
    this.length = this.buffer.writeInt32LE(v, this.length);
  }
  u64(v: number): void {
    this.reserve(8);
    this.length = this.buffer.writeBigUInt64LE(BigInt(v), this.length);
  }
  f32(v: number): void {
    this.reserve(4);
    this.length = this.buffer.writeFloatLE(v, this.length);
  }
  u8(v: number): void {
    this.reserve(1);
    this.length = this.buffer.writeUInt8(v, this.length);
  }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.reserve(bytes.length);
    bytes.copy(this.buffer, this.length);
    this.length += bytes.length;
  }
  padTo(alignment: number): void {
    const pad = (alignment - (this.length % alignment)) % alignment;
    this.reserve(pad);
    this.buffer.fill(0, this.length, this.length + pad);
    this.length += pad;
  }
  bytes(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

export class GgufWriter {
  private readonly metadata = new Map<string, MetadataValue>();
  private readonly tensors: TensorEntry[] = [];

  constructor() {
    this.uint32('general.alignment', GGUF_ALIGNMENT);
  }

  uint32(key: string, value: number): this {
    return this.set(key, { type: ValueType.Uint32, value });
  }
  int32(key: string, value: number): this {
    return this.set(key, { type: ValueType.Int32, value });
  }
  float32(key: string, value: number): this {
    return this.set(key, { type: ValueType.Float32, value });
  }
  bool(key: string, value: boolean): this {
    return this.set(key, { type: ValueType.Bool, value });
  }
  string(key: string, value: string): this {
    return this.set(key, { type: ValueType.String, value });
  }
  strings(key: string, values: readonly string[]): this {
    return this.set(key, { type: ValueType.Array, element: ValueType.String, values });
  }
  float32s(key: string, values: ArrayLike<number>): this {
    return this.set(key, { type: ValueType.Array, element: ValueType.Float32, values });
  }
  int32s(key: string, values: ArrayLike<number>): this {
    return this.set(key, { type: ValueType.Array, element: ValueType.Int32, values });
  }

  /** `dims` in ggml order (innermost first); `data` holds F32 values or F16 bit patterns. */
  tensor(name: string, dims: readonly number[], data: Float32Array | Uint16Array): this {
    const elements = dims.reduce((a, b) => a * b, 1);
    if (data.length !== elements) throw badArgument(`tensor ${name}: ${data.length} values for dims [${dims.join(', ')}]`);
    const type = data instanceof Float32Array ? TensorType.F32 : TensorType.F16;
    this.tensors.push({ name, dims, type, data });
    return this;
  }

  /** Writes the file (header, metadata, descriptors, aligned data) and returns its size in bytes. */
  writeFile(filePath: string): number {
    const head = new ByteSink();
    head.u32(GGUF_MAGIC);
    head.u32(GGUF_VERSION);
    head.u64(this.tensors.length);
    head.u64(this.metadata.size);
    for (const [key, value] of this.metadata) writeMetadata(head, key, value);

    let offset = 0;
    const offsets: number[] = [];
    for (const t of this.tensors) {
      head.string(t.name);
      head.u32(t.dims.length);
      for (const d of t.dims) head.u64(d);
      head.u32(t.type);
      head.u64(offset);
      offsets.push(offset);
      offset = alignUp(offset + t.data.byteLength, GGUF_ALIGNMENT);
    }
    head.padTo(GGUF_ALIGNMENT);

    const fd = fs.openSync(filePath, 'w');
    try {
      fs.writeSync(fd, head.bytes());
      let written = 0;
      const zeros = Buffer.alloc(GGUF_ALIGNMENT);
      this.tensors.forEach((t, i) => {
        if (offsets[i] > written) fs.writeSync(fd, zeros, 0, offsets[i] - written);
        fs.writeSync(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
        written = offsets[i] + t.data.byteLength;
      });
      return head.length + written;
    } finally {
      fs.closeSync(fd);
    }
  }

  private set(key: string, value: MetadataValue): this {
    this.metadata.set(key, value);
    return this;
  }
}

function writeMetadata(sink: ByteSink, key: string, value: MetadataValue): void {
  sink.string(key);
  sink.u32(value.type);
  switch (value.type) {
    case ValueType.Uint32:
      return sink.u32(value.value);
    case ValueType.Int32:
      return sink.i32(value.value);
    case ValueType.Float32:
      return sink.f32(value.value);
    case ValueType.Uint8:
      return sink.u8(value.value);
    case ValueType.Bool:
      return sink.u8(value.value ? 1 : 0);
    case ValueType.String:
      return sink.string(value.value);
    case ValueType.Array: {
      sink.u32(value.element);
      sink.u64(value.values.length);
      if (value.element === ValueType.String) for (const s of value.values as readonly string[]) sink.string(s);
      else if (value.element === ValueType.Float32) for (let i = 0; i < value.values.length; i++) sink.f32((value.values as ArrayLike<number>)[i]);
      else for (let i = 0; i < value.values.length; i++) sink.i32((value.values as ArrayLike<number>)[i]);
      return;
    }
  }
}

function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE 754 binary16 bit pattern of `value` (round to nearest even), for F16 tensors. */
export function float16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0); // inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> signed zero
    const m = mant | 0x800000; // subnormal: shift the implicit bit in
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rounded = (m + half - 1 + ((m >>> shift) & 1)) >>> shift;
    return sign | rounded;
  }
  const rounded = mant + 0xfff + ((mant >>> 13) & 1); // round to nearest, ties to even
  if (rounded & 0x800000) return e + 1 >= 0x1f ? sign | 0x7c00 : sign | ((e + 1) << 10);
  return sign | (e << 10) | (rounded >>> 13);
}
