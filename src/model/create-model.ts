/**
 * The default model: a small MLP over the (normalised) feature vector with a sigmoid output. One function
 * builds it for training and serving; weights are initialised from the seed so that training is
 * deterministic for a seed on a given backend.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { z } from 'zod';
import { initTf } from '../tf/runtime.js';

export const ArchitectureSchema = z.object({
  hidden: z.array(z.number().int().positive()).default([64, 32]),
  dropout: z.number().min(0).max(0.9).default(0.1),
  l2: z.number().min(0).default(1e-5),
});
export type Architecture = z.infer<typeof ArchitectureSchema>;
export const DEFAULT_ARCHITECTURE: Architecture = ArchitectureSchema.parse({});

export interface FeatureSchemaLike {
  names: readonly string[];
}

export async function createModel(
  schema: FeatureSchemaLike,
  arch: Architecture = DEFAULT_ARCHITECTURE,
  seed = 1,
): Promise<tfTypes.LayersModel> {
  const { tf } = await initTf();
  const model = tf.sequential({ name: 'preempt_pd' });
  arch.hidden.forEach((units, i) => {
    model.add(
      tf.layers.dense({
        units,
        activation: 'relu',
        ...(i === 0 ? { inputShape: [schema.names.length] } : {}),
        kernelInitializer: tf.initializers.heNormal({ seed: seed * 101 + i }),
        kernelRegularizer: arch.l2 > 0 ? tf.regularizers.l2({ l2: arch.l2 }) : undefined,
      }),
    );
    if (arch.dropout > 0) model.add(tf.layers.dropout({ rate: arch.dropout, seed: seed * 103 + i }));
  });
  model.add(
    tf.layers.dense({
      units: 1,
      activation: 'sigmoid',
      ...(arch.hidden.length === 0 ? { inputShape: [schema.names.length] } : {}),
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 107 }),
    }),
  );
  return model;
}
