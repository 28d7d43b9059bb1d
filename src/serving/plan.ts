import type { FeatureDef, Registry, ViewDef } from '../config/registry.js';
import { invalid } from '../errors.js';
import { readsSnapshotBeside } from './lambda-merge.js';

/** The features of one view a request reads, and where each goes in the output. */
export interface ViewPlan {
  readonly view: ViewDef;
  readonly features: readonly FeatureDef[];
  readonly outputColumns: readonly number[];
}

/**
 * A resolved feature list: output columns in request order, grouped by view
 * so each view's records are fetched once per entity. Feature services are
 * planned once at start; feature reference lists are planned per request
 * with one map lookup per reference.
 */
export interface ReadPlan {
  readonly features: readonly FeatureDef[];
  readonly views: readonly ViewPlan[];
  /** Every join key the plan's views need, in first-use order. */
  readonly joinKeys: readonly string[];
  /** Whether some view's records are computed or merged at read time: a stream view (from events), a lambda view (from both halves). */
  readonly computesAtRead: boolean;
}

export function planFeatures(features: readonly FeatureDef[]): ReadPlan {
  const byView = new Map<ViewDef, { features: FeatureDef[]; outputColumns: number[] }>();
  const joinKeys: string[] = [];
  features.forEach((feature, column) => {
    let group = byView.get(feature.view);
    if (group === undefined) {
      group = { features: [], outputColumns: [] };
      byView.set(feature.view, group);
      for (const joinKey of feature.view.joinKeys) if (!joinKeys.includes(joinKey)) joinKeys.push(joinKey);
    }
    group.features.push(feature);
    group.outputColumns.push(column);
  });
  const views = [...byView].map(([view, group]) => Object.freeze({ view, features: Object.freeze(group.features), outputColumns: Object.freeze(group.outputColumns) }));
  const computesAtRead = views.some(({ view }) => view.source.type === 'stream' || readsSnapshotBeside(view));
  return Object.freeze({ features: Object.freeze([...features]), views: Object.freeze(views), joinKeys: Object.freeze(joinKeys), computesAtRead });
}

/** Resolves `view:feature` references, naming the first bad one by its position. */
export function resolveFeatureRefs(registry: Registry, refs: readonly string[], field: string): FeatureDef[] {
  const features: FeatureDef[] = [];
  const seen = new Set<FeatureDef>();
  refs.forEach((ref, index) => {
    const feature = registry.featuresByRef.get(ref);
    if (feature === undefined) throw explainBadRef(registry, ref, `${field}[${index}]`);
    if (seen.has(feature)) throw invalid('STRATA_DUPLICATE_FEATURE', `${field}[${index}]`, `${ref} is requested twice`);
    seen.add(feature);
    features.push(feature);
  });
  return features;
}

function explainBadRef(registry: Registry, ref: string, field: string): Error {
  const separator = ref.indexOf(':');
  if (separator <= 0 || separator === ref.length - 1 || ref.indexOf(':', separator + 1) !== -1) {
    return invalid('STRATA_MALFORMED_FEATURE_REF', field, `${JSON.stringify(ref)} is not a reference of the form view:feature`);
  }
  const viewName = ref.slice(0, separator);
  const view = registry.views.get(viewName);
  if (view === undefined) return invalid('STRATA_UNKNOWN_FEATURE_VIEW', field, `feature view ${JSON.stringify(viewName)} is not in the registry`);
  return invalid('STRATA_UNKNOWN_FEATURE', field, `feature view ${viewName} has no feature ${JSON.stringify(ref.slice(separator + 1))} (it has: ${view.features.map((feature) => feature.name).join(', ')})`);
}
