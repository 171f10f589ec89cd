/** Option values shown in logs and `docker volume inspect`: secrets replaced, the rest as given. */
export function maskSecretOptions(options: Readonly<Record<string, unknown>>, secretKeys: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(options).map(([key, value]) => [key, secretKeys.includes(key) ? '********' : value]));
}
