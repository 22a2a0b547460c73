// An image picker for image-shaped model inputs: a float tensor [N,3,H,W], [N,H,W,3] or
// [N,1,H,W] with fixed H and W. The chosen image is drawn to a canvas of H x W and its
// pixels become the tensor (values in 0..1, RGB, or luma for one channel).

const FLOAT_TYPES = new Set(["float32", "float16", "float64", "bfloat16"]);

function isSize(d) {
  return Number.isInteger(d) && d > 0;
}

/**
 * The layout of an image-shaped input ({channels, height, width, channelsFirst}), or null
 * when `input` (an io_signature entry) is not an image-shaped float tensor.
 */
export function imageLayout(input) {
  const tensor = input.type && input.type.tensor;
  if (!tensor || !FLOAT_TYPES.has(tensor.elem_type) || !Array.isArray(tensor.shape)) return null;
  const shape = tensor.shape;
  if (shape.length !== 4 || (Number.isInteger(shape[0]) && shape[0] !== 1)) return null;
  const [, a, b, c] = shape;
  if ((a === 3 || a === 1) && isSize(b) && isSize(c)) {
    return { channels: a, height: b, width: c, channelsFirst: true };
  }
  if (c === 3 && isSize(a) && isSize(b)) return { channels: 3, height: a, width: b, channelsFirst: false };
  return null;
}

/** The tensor's shape for one image in `layout`. */
export function imageShape(layout) {
  const { channels, height, width, channelsFirst } = layout;
  return channelsFirst ? [1, channels, height, width] : [1, height, width, channels];
}

/**
 * Draw `file` (an image) to `canvas` resized to the layout's H x W and read its pixels as a
 * flat row-major Float32Array of the layout's shape. Throws Error in words for a file that
 * is not an image the browser can decode.
 */
export async function imageToTensor(file, layout, canvas) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new Error(`${file.name || "the file"} is not an image this browser can read`);
  }
  const { channels, height, width, channelsFirst } = layout;
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  const pixels = context.getImageData(0, 0, width, height).data; // RGBA bytes
  const data = new Float32Array(channels * height * width);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = 4 * (y * width + x);
      const rgb = [pixels[p] / 255, pixels[p + 1] / 255, pixels[p + 2] / 255];
      const values = channels === 1 ? [0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]] : rgb;
      for (let ch = 0; ch < channels; ch++) {
        const at = channelsFirst ? ch * height * width + y * width + x : (y * width + x) * channels + ch;
        data[at] = values[ch];
      }
    }
  }
  return { shape: imageShape(layout), data };
}
