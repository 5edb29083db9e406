/**
 * Reading the fields of an OpenAI request body, each checked, with OpenAI's wording when one is wrong.
 * OpenAI takes `null` for an optional field as "not given"; unknown fields are ignored.
 */
import { invalidRequest, type OpenAiError } from './openai_errors';

export type JsonObject = Readonly<Record<string, unknown>>;

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function requireJsonObject(body: unknown): JsonObject {
  if (!isJsonObject(body)) throw invalidRequest(null, `The request body must be a JSON object, but got ${describeJson(body)}.`);
  return body;
}

export function field(body: JsonObject, name: string): unknown {
  const value = Object.hasOwn(body, name) ? body[name] : undefined;
  return value === null ? undefined : value;
}

export function describeJson(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a decimal';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

export function wrongType(param: string, expected: string, value: unknown): OpenAiError {
  return invalidRequest(param, `Invalid type for '${param}': expected ${expected}, but got ${describeJson(value)} instead.`);
}

export function missing(param: string): OpenAiError {
  return invalidRequest(param, `Missing required parameter: '${param}'.`);
}

export function readString(body: JsonObject, name: string): string | undefined {
  const value = field(body, name);
  if (value !== undefined && typeof value !== 'string') throw wrongType(name, 'a string', value);
  return value;
}

export function readRequiredString(body: JsonObject, name: string): string {
  const value = readString(body, name);
  if (value === undefined) throw missing(name);
  if (value === '') throw invalidRequest(name, `Invalid '${name}': expected a non-empty string.`);
  return value;
}

export function readBoolean(body: JsonObject, name: string): boolean | undefined {
  const value = field(body, name);
  if (value !== undefined && typeof value !== 'boolean') throw wrongType(name, 'a boolean', value);
  return value;
}

export function outOfRange(param: string, kind: string, bound: string, value: number): OpenAiError {
  return invalidRequest(param, `Invalid '${param}': ${kind}. Expected a value ${bound}, but got ${value} instead.`);
}

export function readInteger(body: JsonObject, name: string, min = Number.MIN_SAFE_INTEGER): number | undefined {
  const value = field(body, name);
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw wrongType(name, 'an integer', value);
  if (value < min) throw outOfRange(name, 'integer below minimum value', `>= ${min}`, value);
  if (value > Number.MAX_SAFE_INTEGER) throw outOfRange(name, 'integer above maximum value', `<= ${Number.MAX_SAFE_INTEGER}`, value);
  return value;
}

export function readNumber(body: JsonObject, name: string, min: number, max: number): number | undefined {
  const value = field(body, name);
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw wrongType(name, 'a number', value);
  if (value < min) throw outOfRange(name, 'number below minimum value', `>= ${min}`, value);
  if (value > max) throw outOfRange(name, 'number above maximum value', `<= ${max}`, value);
  return value;
}


/** The first of `names` given, each checked (chat takes `max_completion_tokens` over the older `max_tokens`). */
export function readMaxTokens(body: JsonObject, names: readonly string[]): { readonly value: number | undefined; readonly param: string } {
  const values = names.map((name) => readInteger(body, name, 1));
  const given = values.findIndex((value) => value !== undefined);
  return given < 0 ? { value: undefined, param: names[0] } : { value: values[given], param: names[given] };
}

/** A boolean of a nested object, named by its full path in errors. */
export function readBooleanAt(object: JsonObject, name: string, param: string): boolean {
  const value = field(object, name);
  if (value !== undefined && typeof value !== 'boolean') throw wrongType(param, 'a boolean', value);
  return value ?? false;
}
