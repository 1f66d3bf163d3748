/**
 * HTTP/2 error codes (RFC 9113 §7) and the two kinds of error the protocol
 * knows: a connection error (GOAWAY, then the connection closes) and a
 * stream error (RST_STREAM, the connection carries on).
 *
 * @module
 */

/** RFC 9113 §7 error codes. */
export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

const NAMES = new Map<number, string>(Object.entries(ErrorCode).map(([k, v]) => [v, k]));

/** The RFC name of an error code (`CANCEL`), or `0x…` for unknown codes. */
export function errorName(code: number): string {
  return NAMES.get(code) ?? `0x${code.toString(16)}`;
}

/** A violation that ends the whole connection (GOAWAY with `code`). */
export class H2ConnectionError extends Error {
  override readonly name = "H2ConnectionError";
  /** Stable code for callers that match on it. */
  readonly errno = "ERR_H2_CONNECTION";
  constructor(readonly code: number, message: string) {
    super(`HTTP/2 connection error ${errorName(code)}: ${message}`);
  }
}

/** A violation confined to one stream (RST_STREAM with `code`). */
export class H2StreamError extends Error {
  override readonly name = "H2StreamError";
  readonly errno = "ERR_H2_STREAM";
  constructor(readonly code: number, readonly streamId: number, message: string) {
    super(`HTTP/2 stream ${streamId} error ${errorName(code)}: ${message}`);
  }
}

/** A stream ended by RST_STREAM, from the peer or ours; `code` is the RST code. */
export class H2ResetError extends Error {
  override readonly name = "H2ResetError";
  /** Matches node:http2's code for a stream closed with an error. */
  readonly code = "ERR_HTTP2_STREAM_ERROR";
  constructor(readonly rstCode: number, readonly remote: boolean) {
    super(
      `stream ${remote ? "reset by the peer" : "reset"} with error code ${errorName(rstCode)}`,
    );
  }
}
