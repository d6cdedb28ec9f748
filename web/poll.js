// Polling for the views without a stream (overview, agents): one request at a time, every
// `ms`, stopped by the returned function. A failed poll shows its error and is retried.
export function poll(ms, tick) {
  let stopped = false;
  let timer = null;
  const controller = new AbortController();
  async function run() {
    if (stopped) return;
    try {
      await tick(controller.signal);
    } catch (err) {
      if (err && err.name === 'AbortError') return;
      console.warn('poll:', err);
    }
    if (!stopped) timer = setTimeout(run, ms);
  }
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
    controller.abort();
  };
}
