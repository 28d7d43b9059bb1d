import type avsc from 'avsc';
import type { SchemaSource } from './schema-source.js';

/** Schema ids fixed in configuration (types parsed at start with loadAvroSchemaFile): no registry to reach. */
export class LocalSchemaFiles implements SchemaSource {
  readonly #types: ReadonlyMap<number, avsc.Type>;

  constructor(types: ReadonlyMap<number, avsc.Type>) {
    this.#types = new Map(types);
  }

  writerType(schemaId: number): Promise<avsc.Type | undefined> {
    return Promise.resolve(this.#types.get(schemaId));
  }
}
