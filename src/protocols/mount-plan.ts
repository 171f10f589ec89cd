/** Everything needed to run one mount, computed purely from a volume and the daemon flags. */
export interface MountPlan {
  readonly fsType: string;
  readonly source: string;
  /** The -o list, without credentials (added by the mounter as a file path). */
  readonly options: readonly string[];
  /** The server, named in error messages so the user knows what to check. */
  readonly server: string;
  /** CIFS only: written to a 0600 credentials file, never to argv. */
  readonly credentials?: Credentials;
}

export interface Credentials {
  readonly username: string;
  readonly password: string;
  readonly domain?: string | undefined;
}

/** `mount` argv for a plan. `--` ends option parsing: nothing after it can be read as a flag. */
export function mountArgv(plan: MountPlan, target: string, credentialsFile?: string): string[] {
  const options = credentialsFile ? [`credentials=${credentialsFile}`, ...plan.options] : [...plan.options];
  return ['-t', plan.fsType, ...(options.length > 0 ? ['-o', options.join(',')] : []), '--', plan.source, target];
}

/** Joins option lists, dropping empties; later lists do not override earlier keys. */
export function joinOptions(...lists: ReadonlyArray<string | undefined>): string[] {
  return lists
    .flatMap((list) => (list ?? '').split(','))
    .map((option) => option.trim())
    .filter((option) => option !== '');
}

export function hasOption(options: readonly string[], ...keys: string[]): boolean {
  return options.some((option) => keys.includes(option.split('=')[0] ?? ''));
}
