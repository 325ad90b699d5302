import type { ReactNode } from 'react';
import { RequireSession } from '../_components/session';

export default function ConsoleLayout({ children }: { children: ReactNode }) {
  return <RequireSession>{children}</RequireSession>;
}
