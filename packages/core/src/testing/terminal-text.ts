/** The control characters (C0, DEL, C1) left in `text`: what a terminal would act on. */
export const controlsIn = (text: string): string[] =>
  [...text].filter((ch) => {
    const code = ch.charCodeAt(0);
    return code < 0x20 || (code >= 0x7f && code <= 0x9f);
  });

/** `text` without the SGR color sequences formatPretty paints. */
export const withoutColors = (text: string): string =>
  text.replace(new RegExp(`${String.fromCharCode(0x1b)}\\[[0-9;]*m`, 'g'), '');
