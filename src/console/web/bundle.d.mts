export const CONSOLE_SCRIPT: string;
export function buildConsoleScript(outfile?: string): Promise<string>;
