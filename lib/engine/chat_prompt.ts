/**
 * OpenAI chat `messages` rendered into the one prompt string the engine runs, with a generic template
 * (not any model's own chat template):
 *
 *   <|system|>\n{content}\n<|user|>\n{content}\n<|assistant|>\n
 *
 * Each message is its role tag, a newline, its text and a newline; the prompt ends with the assistant's
 * tag, which opens the turn the model writes.
 *
 * Prefix stability, the reason for this shape: a message renders the same wherever it stands and nothing
 * in it depends on what follows, and the closing `<|assistant|>\n` is exactly how an assistant message
 * starts. So when a conversation grows by the model's reply and then more messages (the agent loop:
 * user, assistant, tool, assistant, ...), the new prompt begins with the previous prompt followed by the
 * reply's text. The engine reuses the cached KV of the longest common prefix, so a call recomputes only
 * what was appended. (This is a text prefix; whether the tokens line up at the join, right after a
 * newline, is up to the tokenizer and the engine's prefix matching.)
 */

export type ChatRole = 'system' | 'user' | 'assistant' | 'tool';

export const CHAT_ROLES: readonly ChatRole[] = ['system', 'user', 'assistant', 'tool'];

export function isChatRole(value: unknown): value is ChatRole {
  return CHAT_ROLES.some((role) => role === value);
}

/** The only content part a text model can take. */
export interface ChatTextPart {
  readonly type: 'text';
  readonly text: string;
}

export interface ChatMessage {
  readonly role: ChatRole;
  /** `null` where OpenAI allows it (an assistant message that only called tools): rendered as empty text. */
  readonly content: string | readonly ChatTextPart[] | null;
}

/** Joins text parts as vLLM does, so a client gets the same prompt text from either server. */
const TEXT_PART_SEPARATOR = '\n';

function roleTag(role: ChatRole): string {
  return `<|${role}|>\n`;
}

/** Ends every prompt: the start of the assistant message the model is to write. */
const ASSISTANT_TURN_OPENING = roleTag('assistant');

function messageText(content: ChatMessage['content']): string {
  if (content === null) return '';
  if (typeof content === 'string') return content;
  return content.map((part) => part.text).join(TEXT_PART_SEPARATOR);
}

function renderChatMessage(message: ChatMessage): string {
  return `${roleTag(message.role)}${messageText(message.content)}\n`;
}

/** The whole prompt: every message in order, then the opening of the assistant's turn. */
export function renderChatPrompt(messages: readonly ChatMessage[]): string {
  return messages.map(renderChatMessage).join('') + ASSISTANT_TURN_OPENING;
}
