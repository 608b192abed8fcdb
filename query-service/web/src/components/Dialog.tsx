import { ReactNode, RefObject, useLayoutEffect, useRef } from 'react';

/**
 * A modal dialog (the browser's own: focus stays inside, Escape closes it, focus goes back to
 * the button that opened it), titled for screen readers.
 */
export function Dialog({ title, onClose, children }: { title: string; onClose: () => void; children: ReactNode }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const id = `dialog-${title.replace(/\W+/g, '-').toLowerCase()}`;
  useModal(dialog);
  return (
    <dialog
      ref={dialog}
      className="panel-dialog"
      aria-labelledby={id}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      <h2 id={id}>{title}</h2>
      {children}
    </dialog>
  );
}

/**
 * Shows `ref`'s <dialog> as a modal while the component is mounted (the browser keeps focus
 * inside and the rest of the page inert), and gives focus back to the element that had it
 * (the opener) when it closes, as WAI-ARIA's dialog pattern asks.
 */
export function useModal(ref: RefObject<HTMLDialogElement | null>) {
  // A layout effect: the opener is read before anything moves focus, and focus is back on it
  // in the same frame the dialog goes.
  useLayoutEffect(() => {
    const element = ref.current;
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    if (element && !element.open) element.showModal();
    return () => {
      element?.close();
      if (opener?.isConnected) opener.focus();
    };
  }, [ref]);
}
