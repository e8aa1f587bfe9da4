/**
 * JSON for files people write by hand (hub and terminal configs, catalog, fare and product
 * imports): JSON.parse keeps the last of a key given twice in one object without a word, so a
 * price or a port typed twice would be taken silently. Here that is a SyntaxError naming the key
 * and where it is. Parsed by Momoa (an AST parser for strict JSON); the value is JSON.parse's.
 */
import { parse, traverse, type Node, type ObjectNode } from '@humanwhocodes/momoa';

export function parseStrictJson(text: string): unknown {
  const document = parse(text);
  traverse(document, {
    enter(node: Node) {
      if (node.type !== 'Object') return;
      const seen = new Set<string>();
      for (const member of (node as ObjectNode).members) {
        const key = member.name.type === 'String' ? member.name.value : member.name.name;
        const at = member.name.loc.start;
        if (seen.has(key)) throw new SyntaxError(`duplicate key "${key}" at line ${at.line} column ${at.column}`);
        seen.add(key);
      }
    },
  });
  return JSON.parse(text) as unknown;
}
