/**
 * Errors in OpenAI's shape, `{error: {message, type, param, code}}`, and the HTTP statuses they go out
 * with: shared by `saga engine`'s server (./server.ts) and `saga serve`'s gateway (lib/router), so that a
 * client sees the same answers from both.
 */
import type { FastifyInstance } from 'fastify';
import { SHUTDOWN_RETRY_AFTER_S } from '../constants';
import { SagaError } from '../errors';

export const STATUS = {
  ok: 200,
  noContent: 204,
  badRequest: 400,
  notFound: 404,
  conflict: 409,
  payloadTooLarge: 413,
  unsupportedMediaType: 415,
  tooManyRequests: 429,
  /** nginx's status for a client that left before its answer was complete (in metrics only: nobody receives it). */
  clientClosedRequest: 499,
  internalError: 500,
  badGateway: 502,
  unavailable: 503,
  gatewayTimeout: 504,
} as const;

type OpenAiErrorType = 'invalid_request_error' | 'server_error';

export interface OpenAiErrorBody {
  readonly error: { readonly message: string; readonly type: OpenAiErrorType; readonly param: string | null; readonly code: string | null };
}

/** A failure answered to the client: its HTTP status and OpenAI's error object. */
export class OpenAiError extends Error {
  readonly type: OpenAiErrorType;

  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'OpenAiError';
    this.type = status < STATUS.internalError ? 'invalid_request_error' : 'server_error';
  }

  body(): OpenAiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function invalidRequest(param: string | null, message: string, code: string | null = null): OpenAiError {
  return new OpenAiError(STATUS.badRequest, message, param, code);
}

export interface FastifyClientError extends Error {
  readonly code: string;
  readonly statusCode: number;
}

/** Fastify's own 4xx errors (body parsing, content type, body size). */
export function isFastifyClientError(error: unknown): error is FastifyClientError {
  if (!(error instanceof Error) || !('statusCode' in error) || !('code' in error)) return false;
  const { statusCode, code } = error;
  return typeof statusCode === 'number' && statusCode >= STATUS.badRequest && statusCode < STATUS.internalError && typeof code === 'string';
}

function fromFastifyClientError(error: FastifyClientError): OpenAiError {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return invalidRequest(null, 'Unsupported content type: send the request body as JSON, with content-type application/json.');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return invalidRequest(null, 'The request body is empty: expected a JSON object.');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return invalidRequest(null, 'The request body is not valid JSON.');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new OpenAiError(STATUS.payloadTooLarge, 'The request body is larger than this server accepts.');
    default:
      return new OpenAiError(error.statusCode === STATUS.unsupportedMediaType ? STATUS.badRequest : error.statusCode, error.message);
  }
}

function fromSagaError(error: SagaError, promptParam: string | null): OpenAiError {
  switch (error.code) {
    case 'ERR_SAGA_BAD_ARGUMENT':
      return invalidRequest(null, error.message);
    case 'ERR_SAGA_CONTEXT_LENGTH':
      return invalidRequest(promptParam, error.message, 'context_length_exceeded');
    case 'ERR_SAGA_ENGINE_CLOSED':
      return new OpenAiError(STATUS.unavailable, error.message);
    default:
      return new OpenAiError(STATUS.internalError, error.message);
  }
}

/** Any failure as the answer to send; `promptParam` names the field a prompt the engine found too long came in. */
export function toOpenAiError(error: unknown, promptParam: string | null = null): OpenAiError {
  if (error instanceof OpenAiError) return error;
  if (error instanceof SagaError) return fromSagaError(error, promptParam);
  if (isFastifyClientError(error)) return fromFastifyClientError(error);
  const message = error instanceof Error ? error.message : String(error);
  return new OpenAiError(STATUS.internalError, message === '' ? 'Internal server error.' : message);
}

/** Options every OpenAI-shaped Fastify server is built with (installOpenAiErrorHandlers answers its 503s while closing). */
export const OPENAI_SERVER_OPTIONS = { return503OnClosing: false } as const;

/**
 * OpenAI-shaped answers for every failure and unknown URL, and JSON bodies only (a text/plain body would
 * otherwise reach the handlers as a string). `mapError` lets a server word an error its own way first.
 * While the server closes (draining calls in flight), a request that still arrives on an open connection
 * gets an OpenAI 503 `shutting_down` with Retry-After and `connection: close`, not Fastify's own body (the
 * app must be built with OPENAI_SERVER_OPTIONS).
 */
export function installOpenAiErrorHandlers(app: FastifyInstance, mapError: (error: unknown) => OpenAiError = (error) => toOpenAiError(error)): void {
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', (_request, reply, done) => {
    if (!closing) {
      done();
      return;
    }
    const answer = new OpenAiError(STATUS.unavailable, 'The server is shutting down; send the request elsewhere or try again later.', null, 'shutting_down');
    void reply.status(answer.status).header('retry-after', String(SHUTDOWN_RETRY_AFTER_S)).header('connection', 'close').send(answer.body());
  });
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler((error, request, reply) => {
    const answer = mapError(error);
    if (answer.status >= STATUS.internalError) request.log.error({ err: error }, 'request failed');
    return reply.status(answer.status).send(answer.body());
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(STATUS.notFound).send(new OpenAiError(STATUS.notFound, `Invalid URL (${request.method} ${request.url}).`, null, 'unknown_url').body()),
  );
}
