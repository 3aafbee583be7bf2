/* One photo from the phone's camera, made small in the browser before it is uploaded: drawn
   into a canvas at most maxSide pixels on its longer side and encoded as JPEG (this drops the
   file's EXIF; the server re-encodes it again anyway, cases/photos.py). Used by the residents'
   page (/report/) and the phone page (/m/). */
"use strict";
async function resizePhoto(file, maxSide) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, maxSide / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return new Promise((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("encode"))), "image/jpeg", 0.85));
}
