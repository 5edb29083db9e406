/**
 * The agent program a call belongs to, from what clients send: SAGA's headers, the session headers other
 * routers use, and OpenAI's `user` field. `saga engine` and `saga serve` read it the same way.
 *
 * Session, first present wins: `x-saga-session`, `x-session-id`, `x-session-token` (llm-d's session-aware
 * router), the body's `user`; else a session of its own (`anonymousSession()`), so that unrelated calls
 * never share. Tenant: `x-saga-tenant`, else `default`. Kind: `x-saga-kind`, else `default`.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { invalidRequest } from './openai_errors';
import type { ProgramIdentity } from './types';

/** Session, tenant and kind are ids that key tables, logs and metric labels, not payloads. */
export const MAX_IDENTITY_CHARS = 256;
export const DEFAULT_TENANT = 'default';
export const DEFAULT_KIND = 'default';
/** Session headers in precedence order. */
export const SESSION_HEADERS = ['x-saga-session', 'x-session-id', 'x-session-token'] as const;
export const IDENTITY_HEADERS = { session: 'x-saga-session', tenant: 'x-saga-tenant', kind: 'x-saga-kind' } as const;
/** Control characters have no place in an id and break logs and metric labels. */
const CONTROL_CHARACTER = /\p{Cc}/u;

export function checkIdentityValue(value: string, param: string): string {
  if (value === '' || value.length > MAX_IDENTITY_CHARS || CONTROL_CHARACTER.test(value)) {
    throw invalidRequest(param, `Invalid '${param}': expected 1 to ${MAX_IDENTITY_CHARS} printable characters.`);
  }
  return value;
}

export function identityHeader(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  const text = Array.isArray(value) ? value.join(', ') : value;
  return text === undefined ? undefined : checkIdentityValue(text, name);
}

function sessionHeader(headers: IncomingHttpHeaders): string | undefined {
  for (const name of SESSION_HEADERS) {
    const value = identityHeader(headers, name);
    if (value !== undefined) return value;
  }
  return undefined;
}

/** The agent program a call belongs to, by the precedence above. */
export function readIdentity(headers: IncomingHttpHeaders, user: string | undefined, anonymousSession: () => string): ProgramIdentity {
  const userSession = user === undefined || user === '' ? undefined : checkIdentityValue(user, 'user');
  return {
    session: sessionHeader(headers) ?? userSession ?? anonymousSession(),
    tenant: identityHeader(headers, IDENTITY_HEADERS.tenant) ?? DEFAULT_TENANT,
    kind: identityHeader(headers, IDENTITY_HEADERS.kind) ?? DEFAULT_KIND,
  };
}
