import type avsc from 'avsc';

/**
 * Where the writer schema of an Avro event comes from, by the schema id in
 * its Confluent header. Implementations: `ConfluentSchemaRegistry` (HTTP) and
 * `LocalSchemaFiles` (ids fixed in configuration).
 */
export interface SchemaSource {
  /**
   * The writer type for an id, or undefined when the id is definitively
   * unknown (the event is dead-lettered). A failure that may pass — registry
   * unreachable, 5xx, timeout — throws a StrataError of kind 'unavailable'
   * (STRATA_SCHEMA_REGISTRY_UNAVAILABLE): retry later, never dead-letter for
   * it. A registered schema that is not usable Avro throws
   * STRATA_SCHEMA_UNUSABLE, which retrying does not cure.
   */
  writerType(schemaId: number): Promise<avsc.Type | undefined>;
}
