import avsc from 'avsc';

export type ConformOutcome =
  | { readonly ok: true; readonly event: Record<string, unknown> }
  | { readonly ok: false; readonly field: string; readonly rule: string };

const MAX_VALUE_CHARS = 40;

/**
 * Checks an event that arrived as JSON (a JSON Kafka message, a PushEvents
 * item) against the reader schema and returns it as the Avro path would have
 * decoded it: the schema's fields only, missing ones filled from their
 * defaults. Undeclared fields are dropped, as Avro schema resolution drops a
 * newer writer's fields. Nothing is coerced: "12.5" is not a double. The
 * first violation names its field path (`amount`, `items.2.sku`; '' for the
 * event itself) and the rule it broke (`expected double, got "abc"`).
 */
export function conformEvent(readerType: avsc.Type, value: unknown): ConformOutcome {
  if (!isObject(value)) return { ok: false, field: '', rule: `expected a JSON object, got ${show(value)}` };
  const event = withDefaults(readerType, value) as Record<string, unknown>;
  let violation: { field: string; rule: string } | undefined;
  readerType.isValid(event, {
    errorHook: (path, given, type) => {
      violation ??= {
        field: path.join('.'),
        rule: given === undefined ? 'missing, and the schema gives it no default' : `expected ${describe(type)}, got ${show(given)}`,
      };
    },
  });
  return violation === undefined ? { ok: true, event } : { ok: false, ...violation };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Rebuilds records with their declared fields, defaults where absent, wherever records nest. */
function withDefaults(type: avsc.Type, value: unknown): unknown {
  if (type instanceof avsc.types.RecordType && isObject(value)) {
    const record: Record<string, unknown> = {};
    for (const field of type.fields) {
      const given = value[field.name];
      record[field.name] = given === undefined ? field.defaultValue() : withDefaults(field.type, given);
    }
    return record;
  }
  if (type instanceof avsc.types.ArrayType && Array.isArray(value)) return value.map((item) => withDefaults(type.itemsType, item));
  if (type instanceof avsc.types.MapType && isObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, withDefaults(type.valuesType as avsc.Type, item)]));
  }
  if (type instanceof avsc.types.UnwrappedUnionType && typeof value === 'object' && value !== null) {
    // An unwrapped union has at most one branch an object or array can be.
    const branch = type.types.find((candidate) =>
      Array.isArray(value) ? candidate instanceof avsc.types.ArrayType : candidate instanceof avsc.types.RecordType || candidate instanceof avsc.types.MapType,
    );
    return branch === undefined ? value : withDefaults(branch, value);
  }
  return value;
}

function describe(type: avsc.Type): string {
  if (type instanceof avsc.types.EnumType) return `one of ${type.symbols.join(', ')}`;
  if (type instanceof avsc.types.UnwrappedUnionType || type instanceof avsc.types.WrappedUnionType) return type.types.map(describe).join(' or ');
  if (type instanceof avsc.types.RecordType) return `a ${type.name ?? 'record'} record`;
  if (type instanceof avsc.types.ArrayType) return `an array of ${describe(type.itemsType)}`;
  if (type instanceof avsc.types.MapType) return `a map of ${describe(type.valuesType as avsc.Type)}`;
  if (type instanceof avsc.types.FixedType) return `${type.size} fixed bytes`;
  return type.typeName;
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS)}…` : text;
}
