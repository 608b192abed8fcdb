import { ApiError } from '../api/client';

/** A failed request: the API's own message and the request id to quote to an operator. */
export function ErrorNotice({ error, what }: { error: unknown; what: string }) {
  const api = error instanceof ApiError ? error : null;
  return (
    <div role="alert" className="error">
      <strong>Could not {what}.</strong> {api ? api.message : String(error)}
      {api?.requestId && <span className="request-id"> Request id: {api.requestId}</span>}
    </div>
  );
}
