// The explorer index, live: polls the chain API, prepends new blocks and their txs, and
// redraws the chart of block times and difficulty.

import { api, showError } from "./api.js";
import { blockTimePoints, dualLineChart } from "./charts.js";

const POLL_MS = 2000;
const KEEP_ROWS = 15;
const root = document.getElementById("explorer");
const errorBox = document.getElementById("explorer-error");
const chartBlocks = Number(root.dataset.chartBlocks || 60);
let shownHeight = Number(root.dataset.height);

function short(text, size = 16) {
  return text.length <= size ? text : text.slice(0, size) + "…";
}

function cell(content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content);
  else td.textContent = String(content);
  return td;
}

function link(href, text, mono = true) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  if (mono) a.className = "mono";
  return a;
}

function utc(seconds) {
  return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function blockRow(block) {
  const tr = document.createElement("tr");
  tr.dataset.height = String(block.height);
  tr.className = "new-row";
  tr.append(
    cell(link(`/explorer/block/${block.height}`, String(block.height), false)),
    cell(link(`/explorer/block/${block.hash}`, short(block.hash))),
    cell(block.tx_count),
    cell(utc(block.timestamp)),
  );
  return tr;
}

function txRow(tx, height) {
  const tr = document.createElement("tr");
  tr.dataset.txid = tx.txid;
  tr.className = "new-row";
  tr.append(
    cell(link(`/explorer/tx/${tx.txid}`, short(tx.txid))),
    cell(`${tx.contract}.${tx.method}`),
    cell(height),
    cell(tx.receipt ? tx.receipt.status : ""),
  );
  return tr;
}

function trim(tbody) {
  while (tbody.rows.length > KEEP_ROWS) tbody.deleteRow(tbody.rows.length - 1);
}

async function drawChart() {
  const { blocks } = await api(`/api/v1/blocks?limit=${chartBlocks}`);
  dualLineChart(document.getElementById("chart"), blockTimePoints(blocks), {
    x: "block height",
    left: "seconds since parent",
    right: "difficulty",
  });
}

async function poll() {
  try {
    const info = await api("/api/v1/chain");
    document.getElementById("mempool-size").textContent = `${info.mempool_size} txs`;
    if (info.height !== shownHeight) {
      const count = Math.min(Math.max(info.height - shownHeight, 1), KEEP_ROWS);
      const { blocks } = await api(`/api/v1/blocks?limit=${count}`);
      const blockBody = document.querySelector("#latest-blocks tbody");
      const txBody = document.querySelector("#latest-txs tbody");
      for (const block of [...blocks].reverse()) {
        if (block.height <= shownHeight && info.height > shownHeight) continue;
        blockBody.querySelector(`tr[data-height="${block.height}"]`)?.remove(); // a reorg
        blockBody.prepend(blockRow(block));
        const detail = await api(`/api/v1/blocks/${block.hash}`);
        for (const tx of [...detail.txs].reverse()) txBody.prepend(txRow(tx, block.height));
      }
      trim(blockBody);
      trim(txBody);
      shownHeight = info.height;
      root.dataset.height = String(info.height);
      document.getElementById("tip-height").textContent = String(info.height);
      const tip = document.getElementById("tip-hash");
      tip.textContent = info.tip;
      tip.href = `/explorer/block/${info.tip}`;
      document.getElementById("tip-difficulty").textContent = info.difficulty;
      await drawChart();
    }
    showError(errorBox, null);
  } catch (error) {
    showError(errorBox, error);
  }
}

await drawChart().catch((error) => showError(errorBox, error));
root.dataset.ready = "true";

async function loop() {
  await poll();
  setTimeout(loop, POLL_MS); // after the last poll ends, so polls never overlap
}
setTimeout(loop, POLL_MS);
