/**
 * Just enough of a WebAssembly assembler for the scorer's SIMD kernels (normalise-simd.ts, wasm-mlp.ts):
 * LEB128, the few opcodes they use, a module of functions over one memory, and the JS API types (the
 * project's libs, ES2023 + @types/node, do not declare `WebAssembly`).
 */

/** unsigned LEB128 */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** signed LEB128 (32-bit) */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;

const simd = (code: number) => [0xfd, ...uleb(code)];
/** memarg: alignment hint 2^0 (any address), a constant offset */
const memarg = (offset: number) => [0x00, ...uleb(offset)];

/** instructions; each returns its bytes */
export const op = {
  get: (i: number) => [0x20, ...uleb(i)],
  set: (i: number) => [0x21, ...uleb(i)],
  tee: (i: number) => [0x22, ...uleb(i)],
  i32: (n: number) => [0x41, ...sleb(n)],
  f32zero: () => [0x43, 0, 0, 0, 0],
  i32Add: () => [0x6a],
  i32Mul: () => [0x6c],
  i32LtU: () => [0x49],
  i32GeU: () => [0x4f],
  block: () => [0x02, 0x40],
  loop: () => [0x03, 0x40],
  end: () => [0x0b],
  br: (depth: number) => [0x0c, depth],
  brIf: (depth: number) => [0x0d, depth],
  select: () => [0x1b],
  v128Load: (offset = 0) => [...simd(0x00), ...memarg(offset)],
  v128Load32Splat: (offset = 0) => [...simd(0x09), ...memarg(offset)],
  v128Store: (offset = 0) => [...simd(0x0b), ...memarg(offset)],
  f32x4Splat: () => simd(0x13),
  f32x4Add: () => simd(0xe4),
  f32x4Sub: () => simd(0xe5),
  f32x4Mul: () => simd(0xe6),
  f32x4Pmin: () => simd(0xea),
  f32x4Pmax: () => simd(0xeb),
};

export interface WasmFunction {
  name: string;
  params: number[];
  /** local declarations after the params: [count, type] */
  locals: [number, number][];
  code: number[];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function name(text: string): number[] {
  return [text.length, ...[...text].map((c) => c.charCodeAt(0))];
}

/**
 * A module of `funcs` (no results), all exported, over one memory: imported as env.memory, or its own
 * (1 page to start, growable) exported as `memory`.
 */
export function moduleBytes(funcs: WasmFunction[], memory: 'import' | 'own'): Uint8Array {
  const types = funcs.flatMap((f) => [0x60, ...uleb(f.params.length), ...f.params, 0]);
  const exportsList = funcs.flatMap((f, i) => [...name(f.name), 0x00, ...uleb(i)]);
  const bodies = funcs.flatMap((f) => {
    const body = [
      ...uleb(f.locals.length),
      ...f.locals.flatMap(([n, t]) => [...uleb(n), t]),
      ...f.code,
      0x0b,
    ];
    return [...uleb(body.length), ...body];
  });
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [...uleb(funcs.length), ...types]),
    ...(memory === 'import' ? section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x00, 0x00]) : []),
    ...section(3, [...uleb(funcs.length), ...funcs.map((_, i) => i)]),
    ...(memory === 'own' ? section(5, [1, 0x00, 1]) : []),
    ...section(7, [
      ...uleb(funcs.length + (memory === 'own' ? 1 : 0)),
      ...exportsList,
      ...(memory === 'own' ? [...name('memory'), 0x02, 0] : []),
    ]),
    ...section(10, [...uleb(funcs.length), ...bodies]),
  ]);
}

export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => WasmInstance;
}
export const wasmApi = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

/** Compile, or null where WebAssembly (SIMD) is not available. */
export function compileModule(bytes: Uint8Array): object | null {
  try {
    return wasmApi ? new wasmApi.Module(bytes) : null;
  } catch {
    return null;
  }
}

export const WASM_PAGE = 65536;
