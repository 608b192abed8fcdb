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

/** What Tab stops at inside `root`, in order (of a radio group, only its checked radio). */
function tabStops(root: HTMLElement): HTMLElement[] {
  return [...root.querySelectorAll<HTMLElement>('a[href], button, input, select, textarea, summary, [tabindex]')].filter((e) => {
    if (e.tabIndex < 0 || e.matches(':disabled') || e.getClientRects().length === 0) return false;
    if (!(e instanceof HTMLInputElement)) return true;
    if (e.type === 'hidden') return false;
    return e.type !== 'radio' || e.checked || !root.querySelector(`input[type="radio"][name="${CSS.escape(e.name)}"]:checked`);
  });
}

/**
 * Tab from the dialog's last stop goes to its first, Shift+Tab from the first to the last:
 * a modal <dialog> makes the page inert, but Chromium lets Tab leave it for the browser's own
 * controls and the document, where a keyboard user is lost.
 */
function trapTab(dialog: HTMLDialogElement) {
  return (event: KeyboardEvent) => {
    if (event.key !== 'Tab') return;
    const stops = tabStops(dialog);
    const [first, last] = [stops[0], stops[stops.length - 1]];
    if (!first || !last) return;
    const active = document.activeElement;
    if (active === (event.shiftKey ? first : last) || !dialog.contains(active)) {
      event.preventDefault();
      (event.shiftKey ? last : first).focus();
    }
  };
}

/**
 * Shows `ref`'s <dialog> as a modal while the component is mounted (the rest of the page
 * inert, Tab kept inside), and gives focus back to the element that had it (the opener) when
 * it closes, as WAI-ARIA's dialog pattern asks.
 */
export function useModal(ref: RefObject<HTMLDialogElement | null>) {
  // A layout effect: the opener is read before anything moves focus, and focus is back on it
  // in the same frame the dialog goes.
  useLayoutEffect(() => {
    const element = ref.current;
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    if (element && !element.open) element.showModal();
    const trap = element ? trapTab(element) : null;
    if (element && trap) element.addEventListener('keydown', trap);
    return () => {
      if (element && trap) element.removeEventListener('keydown', trap);
      element?.close();
      if (opener?.isConnected) opener.focus();
    };
  }, [ref]);
}
