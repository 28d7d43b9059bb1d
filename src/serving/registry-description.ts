import type { Registry } from '../config/registry.js';

/** The compiled registry as ListFeatureViews and GET /feature-views give it (field names as in the proto). */
export function describeRegistry(registry: Registry) {
  return {
    entities: [...registry.entities.values()].map((entity) => ({ name: entity.name, join_key: entity.joinKey, type: entity.type, description: entity.description })),
    feature_views: [...registry.views.values()].map((view) => ({
      name: view.name,
      entities: view.entities.map((entity) => entity.name),
      ttl_ms: view.ttlMs,
      source_type: view.source.type,
      features: view.features.map((feature) => ({ name: feature.name, type: feature.type })),
      description: view.description,
    })),
    feature_services: [...registry.services.values()].map((service) => ({ name: service.name, features: service.features.map((feature) => feature.ref), description: service.description })),
  };
}
