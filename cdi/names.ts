/**
 * CDI's device names: \`vendor/class=name\` (\`nvidia.com/gpu=0\`), the grammar of CDI's own parser.
 * @module
 */

/** A fully qualified CDI device name, `vendor/class=name` (`nvidia.com/gpu=0`). */
const CDI_NAME =
  /^[A-Za-z](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?\/[A-Za-z](?:[A-Za-z0-9_-]*[A-Za-z0-9])?=[A-Za-z0-9](?:[A-Za-z0-9_.:-]*[A-Za-z0-9])?$/;

/** Whether `id` is a fully qualified CDI device name. */
export function isCdiName(id: string): boolean {
  return CDI_NAME.test(id);
}
