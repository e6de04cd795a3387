/**
 * Reading a JSON file another command wrote (sweep.json, selection.json): a file that cannot be read or
 * parsed, or that does not match the schema, is an error naming the file and the first bad field.
 */
import { readFile } from 'node:fs/promises';
import type { z } from 'zod';

export async function readJsonFile<S extends z.ZodType>(
  file: string,
  schema: S,
  what: string,
): Promise<z.infer<S>> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${file}: not a ${what}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}
