/**
 * csi.v1 messages as @grpc/proto-loader hands them over (keepCase: the spec's snake_case;
 * enums as their names; defaults filled in, so an unset message field is null and an unset
 * map is {}). Incoming fields are typed as possibly missing: a CO, or a test, may send
 * anything, and requests.ts checks every field before anything else reads it.
 */

export const ACCESS_MODES = [
  'UNKNOWN',
  'SINGLE_NODE_WRITER',
  'SINGLE_NODE_READER_ONLY',
  'MULTI_NODE_READER_ONLY',
  'MULTI_NODE_SINGLE_WRITER',
  'MULTI_NODE_MULTI_WRITER',
  'SINGLE_NODE_SINGLE_WRITER',
  'SINGLE_NODE_MULTI_WRITER',
] as const;
export type AccessMode = (typeof ACCESS_MODES)[number];

export interface VolumeCapability {
  readonly block?: Record<string, never> | null;
  readonly mount?: { readonly fs_type?: string; readonly mount_flags?: readonly string[] } | null;
  readonly access_mode?: { readonly mode?: AccessMode | number } | null;
  readonly access_type?: 'block' | 'mount';
}

export type StringMap = Readonly<Record<string, string>>;

export interface CreateVolumeRequest {
  readonly name?: string;
  readonly volume_capabilities?: readonly VolumeCapability[];
  readonly parameters?: StringMap;
  readonly secrets?: StringMap;
  readonly volume_content_source?: { readonly type?: string } | null;
}

export interface Volume {
  readonly capacity_bytes: string | number;
  readonly volume_id: string;
  readonly volume_context: StringMap;
}

export interface DeleteVolumeRequest {
  readonly volume_id?: string;
  readonly secrets?: StringMap;
}

export interface ValidateVolumeCapabilitiesRequest {
  readonly volume_id?: string;
  readonly volume_context?: StringMap;
  readonly volume_capabilities?: readonly VolumeCapability[];
  readonly parameters?: StringMap;
  readonly secrets?: StringMap;
}

export interface ValidateVolumeCapabilitiesResponse {
  readonly confirmed?: {
    readonly volume_context: StringMap;
    readonly volume_capabilities: readonly VolumeCapability[];
    readonly parameters: StringMap;
  };
  readonly message: string;
}

export interface NodePublishVolumeRequest {
  readonly volume_id?: string;
  readonly publish_context?: StringMap;
  readonly staging_target_path?: string;
  readonly target_path?: string;
  readonly volume_capability?: VolumeCapability | null;
  readonly readonly?: boolean;
  readonly secrets?: StringMap;
  readonly volume_context?: StringMap;
}

export interface NodeUnpublishVolumeRequest {
  readonly volume_id?: string;
  readonly target_path?: string;
}
