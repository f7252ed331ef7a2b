'use strict';
// The release workflow cannot run here, so it is checked as far as it can be: valid against
// the GitHub Actions workflow schema (action-validator, SchemaStore's schema compiled to
// WebAssembly), every `needs` resolving, and its build matrix agreeing with napi.targets.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { validateWorkflow } = require('@action-validator/core');
const yaml = require('js-yaml');

const WORKFLOW = path.join(__dirname, '..', '.github', 'workflows', 'release.yml');
const { napi } = require('../package.json');

test('release.yml is a valid workflow', () => {
  const source = fs.readFileSync(WORKFLOW, 'utf8');
  assert.deepEqual(validateWorkflow(source).errors, []);
});

test('the validator reports what it should: a misspelt key and a job that needs a missing job', () => {
  const source = fs.readFileSync(WORKFLOW, 'utf8');
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression, not a template
  const misspelt = validateWorkflow(source.replace('runs-on: ${{ matrix.host }}', 'run-on: ${{ matrix.host }}'));
  assert.ok(misspelt.errors.length > 0, 'a misspelt runs-on passed');
  const dangling = validateWorkflow(source.replace('needs: build', 'needs: biuld'));
  assert.ok(
    dangling.errors.some((e) => e.code === 'unresolved_job'),
    JSON.stringify(dangling.errors),
  );
});

test('the workflow builds and tests every napi target, and publishes with napi pre-publish', () => {
  const { jobs } = yaml.load(fs.readFileSync(WORKFLOW, 'utf8'));
  const built = jobs.build.strategy.matrix.include.map((entry) => entry.target);
  assert.deepEqual([...built].sort(), [...napi.targets].sort());
  for (const entry of jobs.build.strategy.matrix.include) {
    assert.ok(entry.build.includes(`--target ${entry.target}`), `${entry.target} builds ${entry.build}`);
  }
  const tested = [jobs['test-linux'], jobs['test-macos-windows']].flatMap((job) =>
    job.strategy.matrix.include.map((e) => e.target),
  );
  assert.deepEqual(tested.sort(), [...napi.targets].sort());
  const publishSteps = jobs.publish.steps.map((step) => step.run ?? '').join('\n');
  assert.match(publishSteps, /napi pre-publish/);
  assert.deepEqual([...jobs.publish.needs].sort(), ['test-linux', 'test-macos-windows']);
});
